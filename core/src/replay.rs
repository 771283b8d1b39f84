//! Replayed webhooks (RELIABILITY W18). Meta signs the body only, with no timestamp, so a captured
//! POST verifies forever. A replay within the event processor's dedupe window (14 days) is a
//! duplicate and changes nothing; past the acceptance window here, its events are dropped at
//! ingest (200, a security log and a metric; never 4xx, which Meta would retry). The window is
//! longer than Meta's retries of a failed delivery (7 days), so no genuine late delivery is
//! dropped, and shorter than the dedupe window, so every replay is caught by one or the other.

/// Meta retries a failed webhook delivery for up to 7 days.
pub const META_RETRY_WINDOW_S: u64 = 7 * 86_400;
/// The default acceptance window: 8 days.
pub const DEFAULT_MAX_AGE_S: u64 = 8 * 86_400;

/// Why a window cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{days} days is not more than Meta's 7 days of retries: its late redeliveries would be dropped")]
pub struct WindowTooShort {
    /// The window asked for.
    pub days: u64,
}

/// The acceptance window for `days` (0: none, events of any age are accepted).
pub fn window_days(days: u64) -> Result<Option<u64>, WindowTooShort> {
    match days {
        0 => Ok(None),
        _ if days.saturating_mul(86_400) <= META_RETRY_WINDOW_S => Err(WindowTooShort { days }),
        _ => Ok(Some(days.saturating_mul(86_400))),
    }
}

/// How old an event with `timestamp` (Unix seconds) is at `now_s`, when that is more than
/// `max_age_s`; `None` when it is within the window, in the future, or has no timestamp.
#[must_use]
pub fn stale_age(timestamp: Option<i64>, now_s: i64, max_age_s: u64) -> Option<u64> {
    let age = u64::try_from(now_s.checked_sub(timestamp?)?).ok()?;
    (age > max_age_s).then_some(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn only_events_older_than_the_window_are_stale() {
        let max = DEFAULT_MAX_AGE_S;
        let max_i = i64::try_from(max).unwrap();
        assert_eq!(stale_age(Some(NOW - max_i - 1), NOW, max), Some(max + 1));
        assert_eq!(stale_age(Some(NOW - max_i), NOW, max), None, "the boundary is inside");
        assert_eq!(stale_age(Some(NOW - 7 * 86_400), NOW, max), None, "Meta's last retry");
        assert_eq!(stale_age(Some(NOW), NOW, max), None);
        assert_eq!(stale_age(Some(NOW + 3600), NOW, max), None, "a clock ahead is not a replay");
        assert_eq!(stale_age(None, NOW, max), None, "no timestamp: nothing to judge");
        assert_eq!(stale_age(Some(i64::MIN), NOW, max), None, "no overflow");
        assert_eq!(stale_age(Some(0), NOW, max), Some(u64::try_from(NOW).unwrap()));
    }

    #[test]
    fn a_window_must_outlast_metas_retries() {
        assert_eq!(window_days(0), Ok(None));
        assert_eq!(window_days(8), Ok(Some(DEFAULT_MAX_AGE_S)));
        assert_eq!(window_days(30), Ok(Some(30 * 86_400)));
        for days in 1..=7 {
            let error = window_days(days).unwrap_err();
            assert!(error.to_string().contains("7 days of retries"), "{error}");
        }
        assert!(window_days(u64::MAX).is_ok(), "no overflow");
    }
}
