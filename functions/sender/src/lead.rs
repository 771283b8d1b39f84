//! How far ahead of now send slots are reserved.
//!
//! A slot is reserved for `now + lead`, and the reservation is a DynamoDB round trip or two. When
//! those take longer than the lead (a slow or throttled table, a cold connection), every slot is
//! already past when its reservation returns; sending late could bunch sends over the number's
//! limit, so such a slot is given up, and a record that cannot get an on-time slot is retried
//! later. A fixed lead would then fail every record for as long as the table stays slow, burning
//! their receive counts towards the dead-letter queue. So the lead follows the reservations'
//! recent round trips: 1.5× the slowest recent one when that is more than the configured lead.

use std::sync::atomic::{AtomicU64, Ordering};

/// The longest lead (2 s): a table slower than that makes records wait for a later invocation
/// rather than hold slots far ahead.
pub const MAX_LEAD_US: u64 = 2_000_000;

/// The recent reservation round trips of this process (shared by its concurrent records and kept
/// across invocations).
#[derive(Debug, Default)]
pub struct SlotLead {
    /// The slowest recent round trip; each new one replaces it when slower, and otherwise it
    /// decays by an eighth, so a single spike is forgotten after a few dozen reservations.
    slowest_us: AtomicU64,
    /// The latest recent arrival of a record at its batch slot (the reads and writes a record
    /// makes between the batch's reservation and its send), kept as `slowest_us` is.
    latest_us: AtomicU64,
}

impl SlotLead {
    /// Records how long one reservation took.
    pub fn observe(&self, round_trip_us: u64) {
        let decay = |old: u64| Some(round_trip_us.max(old - old / 8));
        // The closure always returns Some, so this cannot fail.
        let _ = self.slowest_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, decay);
    }

    /// The lead for the next reservation: `configured_us`, or 1.5× the slowest recent round trip
    /// when longer, at most [`MAX_LEAD_US`] (and never less than `configured_us`).
    #[must_use]
    pub fn lead_us(&self, configured_us: u64) -> u64 {
        let adaptive = self.slowest_us.load(Ordering::Relaxed).saturating_mul(3) / 2;
        configured_us.max(adaptive.min(MAX_LEAD_US))
    }

    /// Records how late a record reached the slot its batch reserved for it (0 when in time).
    pub fn observe_arrival(&self, late_us: u64) {
        let decay = |old: u64| Some(late_us.max(old - old.div_ceil(8)));
        let _ = self.latest_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, decay);
    }

    /// The lead for a batch's slots: [`lead_us`](Self::lead_us), plus 1.5× the latest recent
    /// arrival at a batch slot, so that a batch whose records take longer to get ready than the
    /// slots allow reserves them far enough ahead to send in them instead of each record
    /// reserving again (a write each); at most [`MAX_LEAD_US`] together.
    #[must_use]
    pub fn batch_lead_us(&self, configured_us: u64) -> u64 {
        let arrival = self.latest_us.load(Ordering::Relaxed).saturating_mul(3) / 2;
        let lead = self.lead_us(configured_us);
        lead.max(lead.saturating_add(arrival).min(MAX_LEAD_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_lead_holds_while_reservations_are_fast() {
        let lead = SlotLead::default();
        assert_eq!(lead.lead_us(30_000), 30_000);
        for _ in 0..100 {
            lead.observe(8_000);
        }
        assert_eq!(lead.lead_us(30_000), 30_000);
    }

    #[test]
    fn a_slow_table_lengthens_the_lead_at_once_and_it_shrinks_back() {
        let lead = SlotLead::default();
        lead.observe(120_000);
        assert_eq!(lead.lead_us(30_000), 180_000, "1.5× the slow round trip, from the next reservation");
        lead.observe(5_000);
        assert_eq!(lead.lead_us(30_000), 157_500, "one fast round trip only decays it by an eighth");
        for _ in 0..40 {
            lead.observe(5_000);
        }
        assert_eq!(lead.lead_us(30_000), 30_000, "back to the configured lead once the table is fast again");
    }

    #[test]
    fn late_arrivals_at_batch_slots_lengthen_only_the_batch_lead() {
        let lead = SlotLead::default();
        assert_eq!(lead.batch_lead_us(30_000), 30_000);
        lead.observe_arrival(100_000);
        assert_eq!(lead.batch_lead_us(30_000), 180_000, "the configured lead plus 1.5x the late arrival");
        assert_eq!(lead.lead_us(30_000), 30_000, "a record's own slot is not reserved further ahead");
        for _ in 0..120 {
            lead.observe_arrival(0);
        }
        assert_eq!(lead.batch_lead_us(30_000), 30_000, "records in time again: back to the lead");
        lead.observe_arrival(60_000_000);
        assert_eq!(lead.batch_lead_us(30_000), MAX_LEAD_US, "capped");
        assert_eq!(lead.batch_lead_us(3_000_000), 3_000_000, "a configured lead above the cap is kept");
    }

    #[test]
    fn the_lead_is_capped() {
        let lead = SlotLead::default();
        lead.observe(60_000_000);
        assert_eq!(lead.lead_us(30_000), MAX_LEAD_US);
        assert_eq!(lead.lead_us(3_000_000), 3_000_000, "a configured lead above the cap is kept");
    }
}
