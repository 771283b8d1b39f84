//! Stop the line beyond one batch: when Meta answers an account-level error (368, 131042, 131031,
//! 131048, …, classified [`crate::graph_error::ErrorClass::StopTheLine`]), the business number is
//! held in the state table for a cool-down; every sender defers that number's requests (they stay
//! queued, their redelivery delayed to the end of the hold) instead of calling Meta again; after the
//! cool-down one sender probes with one request: accepted (or refused for a reason of its own)
//! clears the hold, another account-level error holds the number again, for longer. An operator
//! may clear a hold (`wa hold clear`). Pure rules here; the sender acts on them.

/// The first cool-down.
pub const FIRST_COOL_DOWN_MS: u64 = 5 * 60 * 1000;
/// The longest cool-down: SQS delays a message's redelivery by at most 12 hours.
pub const MAX_COOL_DOWN_MS: u64 = 12 * 3600 * 1000;
/// How long a probe may take before another sender may probe.
pub const PROBE_MS: u64 = 60 * 1000;

/// A business number on hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Meta's code that caused it.
    pub code: i64,
    /// When the first hold of this run began, Unix ms.
    pub since_ms: u64,
    /// When the cool-down ends, Unix ms.
    pub until_ms: u64,
    /// Consecutive holds (1 for the first; each failed probe adds one).
    pub strikes: u32,
    /// Until when a probe is in flight, Unix ms.
    pub probe_until_ms: Option<u64>,
}

/// The cool-down after `strikes` consecutive holds: 5 minutes, tripled each time, at most 12 hours
/// (5 m, 15 m, 45 m, 2 h 15, 6 h 45, 12 h, …).
#[must_use]
pub fn cool_down_ms(strikes: u32) -> u64 {
    let mut ms = FIRST_COOL_DOWN_MS;
    for _ in 1..strikes.min(16) {
        ms = ms.saturating_mul(3);
    }
    ms.min(MAX_COOL_DOWN_MS)
}

/// What a sender does with a number's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCheck {
    /// Not held: send.
    Send,
    /// Held: defer every request of the number until `until_ms`.
    Defer {
        /// When to look again, Unix ms.
        until_ms: u64,
    },
    /// The cool-down is over and nobody is probing: try to claim the probe, then send one request.
    Probe,
}

/// The rule for a number with `hold` at `now_ms`.
#[must_use]
pub fn check(hold: Option<&Hold>, now_ms: u64) -> HoldCheck {
    let Some(hold) = hold else { return HoldCheck::Send };
    if now_ms < hold.until_ms {
        return HoldCheck::Defer { until_ms: hold.until_ms };
    }
    match hold.probe_until_ms {
        Some(probe) if now_ms < probe => HoldCheck::Defer { until_ms: probe },
        _ => HoldCheck::Probe,
    }
}

/// The hold after another account-level error at `now_ms` (`previous`: the current hold, if any).
#[must_use]
pub fn next_hold(previous: Option<&Hold>, code: i64, now_ms: u64) -> Hold {
    let strikes = previous.map_or(1, |h| h.strikes.saturating_add(1));
    Hold {
        code,
        since_ms: previous.map_or(now_ms, |h| h.since_ms),
        until_ms: now_ms.saturating_add(cool_down_ms(strikes)),
        strikes,
        probe_until_ms: None,
    }
}

/// The redelivery delay, in seconds, of a request deferred until `until_ms` (at least 1 s, at most
/// SQS's 12 hours).
#[must_use]
pub fn defer_seconds(until_ms: u64, now_ms: u64) -> u32 {
    let seconds = until_ms.saturating_sub(now_ms).div_ceil(1000).clamp(1, 43_200);
    u32::try_from(seconds).unwrap_or(43_200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cool_downs_grow_to_twelve_hours() {
        let minutes: Vec<u64> = (1..=7).map(|s| cool_down_ms(s) / 60_000).collect();
        assert_eq!(minutes, [5, 15, 45, 135, 405, 720, 720]);
        assert_eq!(cool_down_ms(0), FIRST_COOL_DOWN_MS);
        assert_eq!(cool_down_ms(u32::MAX), MAX_COOL_DOWN_MS);
    }

    #[test]
    fn the_hold_as_a_table() {
        let hold = Hold { code: 368, since_ms: 0, until_ms: 1_000, strikes: 1, probe_until_ms: None };
        let probing = Hold { probe_until_ms: Some(2_000), ..hold.clone() };
        let table = [
            (None, 500, HoldCheck::Send),
            (Some(&hold), 500, HoldCheck::Defer { until_ms: 1_000 }),
            (Some(&hold), 1_000, HoldCheck::Probe),
            (Some(&probing), 1_500, HoldCheck::Defer { until_ms: 2_000 }),
            (Some(&probing), 2_000, HoldCheck::Probe),
        ];
        for (i, (hold, now, expected)) in table.into_iter().enumerate() {
            assert_eq!(check(hold, now), expected, "row {i}");
        }
    }

    #[test]
    fn a_failed_probe_holds_longer() {
        let first = next_hold(None, 131_042, 10_000);
        assert_eq!((first.strikes, first.since_ms, first.until_ms), (1, 10_000, 10_000 + 300_000));
        let second = next_hold(Some(&first), 131_042, 400_000);
        assert_eq!((second.strikes, second.since_ms, second.until_ms), (2, 10_000, 400_000 + 900_000));
        assert_eq!(defer_seconds(10_500, 10_000), 1);
        assert_eq!(defer_seconds(10_000, 20_000), 1);
        assert_eq!(defer_seconds(u64::MAX, 0), 43_200);
    }
}
