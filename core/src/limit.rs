//! Meta's messaging limit, pure: since 2025-10 a business portfolio may reach a number of unique
//! users with business-initiated templates in a rolling 24 hours (TIER_250 … unlimited;
//! `reference/CLOUD_API_2026.md` §4). The tier is learned from `phone_number_quality_update` and
//! `business_capability_update` webhooks (or set by configuration); the unique users reached are
//! counted in hour buckets of a rolling window; a send to a new user beyond the limit is deferred
//! until the oldest bucket leaves the window, never failed. A user already reached in the window
//! costs nothing more. `THROUGHPUT_UPGRADE` lifts the number's send rate to 1,000 messages/s.

use std::collections::BTreeMap;

use serde_json::Value;

/// The rolling window.
pub const WINDOW_S: u64 = 24 * 3600;
/// The bucket width.
pub const BUCKET_S: u64 = 3600;
/// The send rate after `THROUGHPUT_UPGRADE`, messages per second.
pub const UPGRADED_RATE: u32 = 1000;

/// A messaging-limit tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// At most this many unique users per rolling 24 hours.
    Limited(u64),
    /// No limit.
    Unlimited,
}

/// Parses a tier as Meta writes it: `TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_1K`
/// (older), `TIER_50`, `TIER_UNLIMITED`, or an integer (`2000`, `-1` for unlimited) as a number
/// or a string; `TIER_NOT_SET` and anything else: `None` (keep what is known).
#[must_use]
pub fn parse_tier(value: &Value) -> Option<Tier> {
    let number = |n: i64| match n {
        -1 => Some(Tier::Unlimited),
        n if n > 0 => u64::try_from(n).ok().map(Tier::Limited),
        _ => None,
    };
    match value {
        Value::Number(n) => n.as_i64().and_then(number),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return number(n);
            }
            let rest = s.strip_prefix("TIER_")?;
            if rest == "UNLIMITED" {
                return Some(Tier::Unlimited);
            }
            let (digits, scale) = match rest.strip_suffix('K') {
                Some(digits) => (digits, 1000),
                None => (rest, 1),
            };
            digits.parse::<u64>().ok().filter(|n| *n > 0).map(|n| Tier::Limited(n * scale))
        }
        _ => None,
    }
}

/// What a webhook says of the limit: the portfolio's tier (from `max_daily_conversations_per_business`,
/// else `current_limit`, else the legacy `max_daily_conversation_per_phone`), and whether it
/// announces a throughput upgrade.
#[must_use]
pub fn from_webhook(field: &str, value: &Value) -> (Option<Tier>, bool) {
    if field != "phone_number_quality_update" && field != "business_capability_update" {
        return (None, false);
    }
    let tier = ["max_daily_conversations_per_business", "current_limit", "max_daily_conversation_per_phone"]
        .iter()
        .find_map(|key| value.get(*key).and_then(parse_tier));
    let upgrade = value.get("event").and_then(Value::as_str) == Some("THROUGHPUT_UPGRADE");
    (tier, upgrade)
}

/// Users first reached in each hour of the window: hour index (Unix hours) → count.
pub type Buckets = BTreeMap<u64, u64>;

/// The buckets still inside the window at `now_s` (the hour the window starts in counts whole: a
/// user reached late in it is still inside, so counting it whole never undercounts).
#[must_use]
pub fn live(buckets: &Buckets, now_s: u64) -> Buckets {
    let oldest = now_s.saturating_sub(WINDOW_S) / BUCKET_S;
    buckets.range(oldest..).map(|(h, n)| (*h, *n)).collect()
}

/// Unique users reached in the window.
#[must_use]
pub fn reached(buckets: &Buckets, now_s: u64) -> u64 {
    live(buckets, now_s).values().sum()
}

/// Whether a send may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The user was reached in the window already: it costs nothing.
    Again,
    /// A new user within the limit: count them in the current hour.
    New,
    /// A new user beyond the limit: wait until this time (Unix seconds), when the oldest bucket
    /// leaves the window.
    Defer {
        /// When to try again.
        until_s: u64,
    },
}

/// The decision for a business-initiated template to a user: `reached_at` is when the user was
/// last counted (Unix seconds), `buckets` the window, `tier` the limit (`None`: not known, no limit
/// applied).
#[must_use]
pub fn decide(tier: Option<Tier>, buckets: &Buckets, reached_at: Option<u64>, now_s: u64) -> Reach {
    if reached_at.is_some_and(|at| at + WINDOW_S > now_s) {
        return Reach::Again;
    }
    let Some(Tier::Limited(limit)) = tier else {
        return Reach::New;
    };
    let window = live(buckets, now_s);
    let total: u64 = window.values().sum();
    if total < limit {
        return Reach::New;
    }
    // Enough of the oldest buckets must leave for one place to open.
    let mut freed = 0;
    for (hour, n) in &window {
        freed += n;
        if total - freed < limit {
            return Reach::Defer { until_s: (hour + 1) * BUCKET_S + WINDOW_S };
        }
    }
    Reach::Defer { until_s: now_s + WINDOW_S }
}

/// Whether a request counts against the limit: a template message (business-initiated), not a
/// free-form reply inside the service window, not a read receipt.
#[must_use]
pub fn counts(request: &crate::send::SendRequest) -> bool {
    request.to.is_some() && request.message.get("type").and_then(Value::as_str) == Some("template")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiers_parse_in_every_form_meta_uses() {
        let table = [
            (json!("TIER_250"), Some(Tier::Limited(250))),
            (json!("TIER_2K"), Some(Tier::Limited(2000))),
            (json!("TIER_1K"), Some(Tier::Limited(1000))),
            (json!("TIER_100K"), Some(Tier::Limited(100_000))),
            (json!("TIER_50"), Some(Tier::Limited(50))),
            (json!("TIER_UNLIMITED"), Some(Tier::Unlimited)),
            (json!("TIER_NOT_SET"), None),
            (json!(2000), Some(Tier::Limited(2000))),
            (json!("2000"), Some(Tier::Limited(2000))),
            (json!(-1), Some(Tier::Unlimited)),
            (json!(0), None),
            (json!("TIER_"), None),
            (json!(null), None),
        ];
        for (value, expected) in table {
            assert_eq!(parse_tier(&value), expected, "{value}");
        }
    }

    #[test]
    fn webhooks_name_the_tier_and_the_upgrade() {
        let quality = json!({"display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
            "current_limit": "TIER_UNLIMITED", "max_daily_conversations_per_business": "TIER_2K"});
        assert_eq!(from_webhook("phone_number_quality_update", &quality), (Some(Tier::Limited(2000)), true));
        let onboarding = json!({"event": "ONBOARDING", "current_limit": "TIER_250"});
        assert_eq!(from_webhook("phone_number_quality_update", &onboarding), (Some(Tier::Limited(250)), false));
        let capability = json!({"max_daily_conversation_per_phone": 10000, "max_phone_numbers_per_business": 2});
        assert_eq!(from_webhook("business_capability_update", &capability), (Some(Tier::Limited(10_000)), false));
        assert_eq!(from_webhook("messages", &quality), (None, false));
    }

    #[test]
    fn the_window_admits_up_to_the_limit_then_defers_until_room_opens() {
        let hour = |h: u64| h * BUCKET_S;
        let now = hour(1000) + 1800;
        let tier = Some(Tier::Limited(250));
        let mut buckets = Buckets::new();
        buckets.insert(975, 500); // left the window
        buckets.insert(977, 100);
        buckets.insert(990, 100);
        buckets.insert(1000, 49);
        assert_eq!(reached(&buckets, now), 249);
        assert_eq!(decide(tier, &buckets, None, now), Reach::New);
        buckets.insert(1000, 50);
        // Full: the 100 of hour 977 leave the window at the end of hour 977 + 24.
        assert_eq!(decide(tier, &buckets, None, now), Reach::Defer { until_s: hour(978) + WINDOW_S });
        assert!(hour(978) + WINDOW_S > now, "in the future");
        assert_eq!(decide(tier, &buckets, Some(now - 3600), now), Reach::Again, "already reached: free");
        assert_eq!(
            decide(tier, &buckets, Some(now - WINDOW_S - 1), now),
            Reach::Defer { until_s: hour(978) + WINDOW_S }
        );
        assert_eq!(decide(Some(Tier::Unlimited), &buckets, None, now), Reach::New);
        assert_eq!(decide(None, &buckets, None, now), Reach::New, "no tier known: no limit applied");
        // Over the limit (the tier went down): room opens only when enough buckets leave.
        assert_eq!(
            decide(Some(Tier::Limited(120)), &buckets, None, now),
            Reach::Defer { until_s: hour(991) + WINDOW_S }
        );
    }
}
