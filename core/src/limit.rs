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

impl Tier {
    /// The tier as a stored integer: the limit, or -1 for unlimited.
    #[must_use]
    pub fn stored(self) -> i64 {
        match self {
            Self::Limited(limit) => i64::try_from(limit).unwrap_or(i64::MAX),
            Self::Unlimited => -1,
        }
    }

    /// A stored integer back as a tier (`None` for anything else).
    #[must_use]
    pub fn from_stored(value: i64) -> Option<Self> {
        parse_tier(&Value::from(value))
    }
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

/// A display number as a key: its digits only (`+1 555-078 3881` and `15550783881` are one).
#[must_use]
pub fn display_key(display_phone_number: &str) -> String {
    display_phone_number.chars().filter(char::is_ascii_digit).collect()
}

/// The longest a send is deferred at once: SQS's longest visibility timeout (12 hours). A
/// longer wait is deferred again when it comes back.
pub const MAX_DEFER_S: u64 = 12 * 3600;

/// The redelivery delay of a deferred send: until `until_s`, at least 1 s, at most [`MAX_DEFER_S`].
#[must_use]
pub fn defer_seconds(until_s: u64, now_s: u64) -> u32 {
    u32::try_from(until_s.saturating_sub(now_s).clamp(1, MAX_DEFER_S)).unwrap_or(u32::MAX)
}

/// The portfolio every number and WABA belongs to unless `PORTFOLIOS` names another.
pub const DEFAULT_PORTFOLIO: &str = "default";

/// Which business portfolio a phone number id or a WABA id belongs to (`PORTFOLIOS`:
/// `id=portfolio` pairs, comma-separated). A deployment that serves one portfolio names none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Portfolios {
    by_id: BTreeMap<String, String>,
}

impl Portfolios {
    /// Parses `id=portfolio,id=portfolio`; empty: everything in the default portfolio.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_id = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((id, portfolio)) = pair.split_once('=').map(|(a, b)| (a.trim(), b.trim())) else {
                return Err(format!("PORTFOLIOS: `{pair}` is not id=portfolio"));
            };
            if id.is_empty() || portfolio.is_empty() || portfolio.contains('#') {
                return Err(format!("PORTFOLIOS: `{pair}` needs an id and a portfolio name without `#`"));
            }
            by_id.insert(id.to_owned(), portfolio.to_owned());
        }
        Ok(Self { by_id })
    }

    /// The portfolio of a phone number id or a WABA id.
    #[must_use]
    pub fn of(&self, id: &str) -> &str {
        self.by_id.get(id).map_or(DEFAULT_PORTFOLIO, String::as_str)
    }
}

/// A portfolio's window as stored: the tier learned from Meta's webhooks, and the buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// The tier Meta last announced (`None`: never).
    pub tier: Option<Tier>,
    /// Users first reached in each hour.
    pub buckets: Buckets,
}

impl Window {
    /// The tier in force: what Meta announced, else the configured one (`MESSAGING_LIMIT`).
    #[must_use]
    pub fn tier_or(&self, configured: Option<Tier>) -> Option<Tier> {
        self.tier.or(configured)
    }

    /// Users reached in the window and the limit, when limited: for `wa stats` and the metric.
    #[must_use]
    pub fn usage(&self, configured: Option<Tier>, now_s: u64) -> (u64, Option<u64>) {
        let limit = match self.tier_or(configured) {
            Some(Tier::Limited(limit)) => Some(limit),
            _ => None,
        };
        (reached(&self.buckets, now_s), limit)
    }
}

/// The conditional write that counts a new user, so that concurrent senders together never
/// exceed the limit: the current hour's bucket grows by one while it is below `cap` (the limit
/// less every other live bucket), and the two buckets next to it, the only others a sender with a
/// slightly different clock may still be growing, hold what was read. Buckets that left the window
/// are removed in the same write. The user's own record is written with it, unless the user was
/// reached since `user_cutoff_s` (then nothing is counted: [`Counted::Already`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The hour the user is counted in.
    pub hour: u64,
    /// The current bucket must be below this.
    pub cap: u64,
    /// (hour, count read) of the neighbouring buckets (0: absent).
    pub neighbours: [(u64, u64); 2],
    /// Hours to remove.
    pub expired: Vec<u64>,
    /// A user reached at or after this is reached already.
    pub user_cutoff_s: u64,
    /// Now (the user's record).
    pub at_s: u64,
}

/// The count of a new user under `limit` at `now_s`, from the buckets as read.
#[must_use]
pub fn count(limit: u64, buckets: &Buckets, now_s: u64) -> Count {
    let hour = now_s / BUCKET_S;
    let window = live(buckets, now_s);
    let others: u64 = window.iter().filter(|(h, _)| **h != hour).map(|(_, n)| *n).sum();
    let at = |h: u64| buckets.get(&h).copied().unwrap_or(0);
    Count {
        hour,
        cap: limit.saturating_sub(others),
        neighbours: [(hour - 1, at(hour - 1)), (hour + 1, at(hour + 1))],
        expired: buckets.keys().copied().filter(|h| !window.contains_key(h)).collect(),
        user_cutoff_s: now_s.saturating_sub(WINDOW_S) + 1,
        at_s: now_s,
    }
}

/// How a conditional count ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The user is counted: send.
    New,
    /// The user was reached in the window already: send, nothing counted.
    Already,
    /// The window is full, or changed since it was read: read it again and decide again.
    Full,
}

/// What the sender does with a business-initiated send before the Graph call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not limited (no tier known, or unlimited): send, count nothing.
    Open,
    /// Count the user with this limit, then send.
    Count(u64),
    /// The window is full for new users: send only if this user was reached since the window
    /// began, else defer until `until_s`.
    Full {
        /// When room opens.
        until_s: u64,
    },
}

/// The gate for a new or unknown user: [`decide`] without knowing when the user was reached (the
/// conditional count finds that out in the same write).
#[must_use]
pub fn gate(tier: Option<Tier>, buckets: &Buckets, now_s: u64) -> Gate {
    match (tier, decide(tier, buckets, None, now_s)) {
        (Some(Tier::Limited(limit)), Reach::New) => Gate::Count(limit),
        (_, Reach::Defer { until_s }) => Gate::Full { until_s },
        _ => Gate::Open,
    }
}

/// Whether a send counts against the limit: a template (or the fallback template the sender
/// sends instead) to a user, unless the user's customer-service window is open (Meta counts the
/// users reached outside it). `window_open`: `None` when the sender does not know (counted).
#[must_use]
pub fn counts_send(request: &crate::send::SendRequest, use_fallback: bool, window_open: Option<bool>) -> bool {
    (counts(request) || (use_fallback && request.to.is_some())) && window_open != Some(true)
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

    #[test]
    fn portfolios_name_numbers_and_wabas() {
        let p = Portfolios::parse(" 1001=shop , W1=shop,2002=bank").unwrap();
        assert_eq!(p.of("1001"), "shop");
        assert_eq!(p.of("W1"), "shop");
        assert_eq!(p.of("2002"), "bank");
        assert_eq!(p.of("3003"), DEFAULT_PORTFOLIO);
        assert_eq!(Portfolios::parse("").unwrap().of("x"), DEFAULT_PORTFOLIO);
        for bad in ["1001", "=shop", "1001=", "1001=a#b"] {
            assert!(Portfolios::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_count_caps_the_current_bucket_and_guards_its_neighbours() {
        let now = 1000 * BUCKET_S + 10;
        let buckets: Buckets = [(970, 7), (977, 100), (999, 40), (1000, 60), (1001, 0)].into_iter().collect();
        let c = count(250, &buckets, now);
        assert_eq!(c.hour, 1000);
        assert_eq!(c.cap, 250 - 140, "the limit less the other live buckets");
        assert_eq!(c.neighbours, [(999, 40), (1001, 0)]);
        assert_eq!(c.expired, vec![970]);
        assert_eq!(c.user_cutoff_s, now - WINDOW_S + 1);
        assert_eq!(count(100, &buckets, now).cap, 0, "over the limit: nothing fits");
    }

    #[test]
    fn the_gate_counts_below_the_limit_and_holds_new_users_above_it() {
        let now = 1000 * BUCKET_S;
        let full: Buckets = [(990, 250)].into_iter().collect();
        let table = [
            (None, Buckets::new(), Gate::Open),
            (Some(Tier::Unlimited), full.clone(), Gate::Open),
            (Some(Tier::Limited(250)), Buckets::new(), Gate::Count(250)),
            (Some(Tier::Limited(250)), full.clone(), Gate::Full { until_s: 991 * BUCKET_S + WINDOW_S }),
            (Some(Tier::Limited(2000)), full, Gate::Count(2000)),
        ];
        for (tier, buckets, expected) in table {
            assert_eq!(gate(tier, &buckets, now), expected, "{tier:?}");
        }
        let window = Window { tier: None, buckets: [(999, 5)].into_iter().collect() };
        assert_eq!(window.tier_or(Some(Tier::Limited(250))), Some(Tier::Limited(250)));
        assert_eq!(window.usage(Some(Tier::Limited(250)), now), (5, Some(250)));
        let learned = Window { tier: Some(Tier::Unlimited), ..window };
        assert_eq!(learned.usage(Some(Tier::Limited(250)), now), (5, None), "what Meta said wins");
    }

    #[test]
    fn deferrals_are_capped_at_the_longest_visibility_timeout() {
        assert_eq!(defer_seconds(100, 100), 1);
        assert_eq!(defer_seconds(160, 100), 60);
        assert_eq!(defer_seconds(100 + 2 * WINDOW_S, 100), 43_200);
    }

    #[test]
    fn templates_count_outside_the_service_window_only() {
        let template = crate::send::SendRequest::from_json(
            r#"{"phone_number_id":"1","to":"15550001111","message":{"type":"template","template":{"name":"t","language":{"code":"en"}}}}"#,
        )
        .unwrap();
        let text = crate::send::SendRequest::from_json(
            r#"{"phone_number_id":"1","to":"15550001111","message":{"type":"text","text":{"body":"hi"}}}"#,
        )
        .unwrap();
        assert!(counts_send(&template, false, Some(false)));
        assert!(counts_send(&template, false, None), "not known: counted");
        assert!(!counts_send(&template, false, Some(true)), "a reply inside the window");
        assert!(!counts_send(&text, false, Some(false)));
        assert!(counts_send(&text, true, Some(false)), "the fallback template");
    }
}
