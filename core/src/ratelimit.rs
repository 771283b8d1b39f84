//! Rate-limit math, pure: a reservation-based GCRA (generic cell rate algorithm) shared by every
//! sender instance through one number per business phone number (the "theoretical arrival time").
//!
//! A sender that wants to send `n` messages reserves the next `n` slots of `1/rate` seconds each:
//! the reservation starts at `max(tat, now)` and moves `tat` forward by `n/rate`. It then sends
//! message `i` at `start + i/rate`. However many instances reserve concurrently (each reservation is
//! a conditional write on the previous `tat`), slots never overlap, so no window of one second ever
//! holds more than `rate` sends — the property Meta's throughput limit checks.

/// A reservation of `count` consecutive send slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// When the first slot starts (Unix milliseconds, as microseconds precision below).
    pub start_us: u64,
    /// The spacing between slots, in microseconds.
    pub interval_us: u64,
    /// How many slots.
    pub count: u32,
    /// The new theoretical arrival time to store.
    pub new_tat_us: u64,
}

impl Reservation {
    /// When slot `i` starts.
    #[must_use]
    pub fn slot_us(&self, i: u32) -> u64 {
        self.start_us + u64::from(i) * self.interval_us
    }
}

/// The spacing of slots for `rate_per_second` (at least 1).
#[must_use]
pub fn interval_us(rate_per_second: u32) -> u64 {
    1_000_000u64.div_ceil(u64::from(rate_per_second.max(1)))
}

/// The spacing of slots when pacing at `fraction` (e.g. 0.97) of `rate_per_second`, leaving a
/// margin for network jitter between the sender and Meta's counter.
#[must_use]
pub fn paced_interval_us(rate_per_second: u32, fraction: f64) -> u64 {
    let rate = f64::from(rate_per_second.max(1)) * fraction.clamp(0.01, 1.0);
    // Whole microseconds, rounded up so that the pace never exceeds the fraction.
    let interval = (1_000_000.0 / rate).ceil();
    if interval.is_finite() && interval >= 1.0 { interval as u64 } else { interval_us(rate_per_second) }
}

/// The least lateness allowed (2 ms): a timer wakes up a little after its slot, and with no
/// pacing margin at all a send must still be able to go.
pub const MIN_LATENESS_US: u64 = 2_000;

/// How late after its slot a send may still go out, for slots `interval_us` apart under a limit
/// of `rate_per_second` counted over any one second (Meta's 130429): sends that each start within
/// `L` of a slot of their own put at most `(1 s + L + J) / interval`, rounded up, into a second
/// as Meta counts it, `J` being the network's jitter on the way there. Pacing below the limit
/// leaves `rate × interval − 1 s` for `L + J`; a third of it goes to lateness and two thirds to
/// the network, never more than ten slots, never less than [`MIN_LATENESS_US`]. Paced at 97 %:
/// about 10.3 ms at any rate from 1/s to 1,000/s.
#[must_use]
pub fn max_lateness_us(rate_per_second: u32, interval_us: u64) -> u64 {
    let room = u64::from(rate_per_second).saturating_mul(interval_us).saturating_sub(1_000_000);
    (room / 3).max(MIN_LATENESS_US).min(interval_us.saturating_mul(10))
}

/// Reserves `count` slots spaced `interval_us` apart given the stored `tat_us` (None when no send yet).
/// Slots are never handed out more than `horizon_us` ahead of `now_us`: past that, `None` means
/// "too busy, try again later" (the caller re-queues instead of sleeping for long).
#[must_use]
pub fn reserve(tat_us: Option<u64>, now_us: u64, count: u32, interval: u64, horizon_us: u64) -> Option<Reservation> {
    let start = tat_us.unwrap_or(0).max(now_us);
    if start.saturating_sub(now_us) > horizon_us {
        return None;
    }
    Some(Reservation { start_us: start, interval_us: interval, count, new_tat_us: start + u64::from(count) * interval })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lateness_keeps_any_second_under_the_limit_with_room_for_the_network() {
        // (rate, pacing, allowed lateness in µs)
        let table = [
            (80, 0.97, 10_320),
            (1000, 0.97, 10_310),
            (4, 0.97, 10_309),
            (1, 0.97, 10_309),
            (80, 0.9, 37_040),
            (80, 1.0, MIN_LATENESS_US),
        ];
        for (rate, pacing, expected) in table {
            let interval = paced_interval_us(rate, pacing);
            let lateness = max_lateness_us(rate, interval);
            assert_eq!(lateness, expected, "{rate}/s at {pacing}");
            if pacing < 1.0 {
                // The worst second: slots from 1 s + lateness + twice as much network jitter.
                let worst = (1_000_000 + 3 * lateness).div_ceil(interval);
                assert!(worst <= u64::from(rate), "{rate}/s at {pacing}: {worst} sends in a second");
            }
        }
    }

    #[test]
    fn reservations_follow_each_other() {
        let a = reserve(None, 1_000_000, 10, interval_us(80), 5_000_000).unwrap();
        assert_eq!(a.start_us, 1_000_000);
        assert_eq!(a.interval_us, 12_500);
        assert_eq!(a.new_tat_us, 1_125_000);
        let b = reserve(Some(a.new_tat_us), 1_010_000, 10, interval_us(80), 5_000_000).unwrap();
        assert_eq!(b.start_us, 1_125_000);
        // Idle time is not banked: after a pause the next reservation starts now.
        let c = reserve(Some(b.new_tat_us), 9_000_000, 1, interval_us(80), 5_000_000).unwrap();
        assert_eq!(c.start_us, 9_000_000);
        // Too far ahead: refuse.
        assert!(reserve(Some(20_000_000), 9_000_000, 1, interval_us(80), 5_000_000).is_none());
    }

    #[test]
    fn pacing_leaves_a_margin() {
        assert_eq!(paced_interval_us(80, 1.0), 12_500);
        assert_eq!(paced_interval_us(80, 0.97), 12_887);
        assert!(1_000_000.0 / paced_interval_us(20, 0.97) as f64 >= 19.39);
        assert_eq!(paced_interval_us(0, 0.97), 1_030_928);
    }

    proptest! {
        /// Whatever the interleaving of reservations, no one-second window holds more than `rate`
        /// slots.
        #[test]
        fn no_second_exceeds_the_rate(rate in 1u32..1000, steps in proptest::collection::vec((0u64..300_000, 1u32..=10), 1..200)) {
            let mut tat = None;
            let mut now = 0u64;
            let mut slots = Vec::new();
            for (advance, count) in steps {
                now += advance;
                if let Some(r) = reserve(tat, now, count, interval_us(rate), u64::MAX) {
                    tat = Some(r.new_tat_us);
                    slots.extend((0..r.count).map(|i| r.slot_us(i)));
                }
            }
            slots.sort_unstable();
            for (i, start) in slots.iter().enumerate() {
                let in_window = slots[i..].iter().take_while(|s| **s < start + 1_000_000).count();
                prop_assert!(in_window <= rate as usize, "{} sends in the second from {}", in_window, start);
            }
        }
    }
}
