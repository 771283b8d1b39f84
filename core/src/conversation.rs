//! Conversation rules, pure: the monotonic message-status machine, the 24-hour customer-service
//! window and the 72-hour free-entry-point window, and marketing opt-out keywords.
//! The event processor (DynamoDB) applies them; they are decided here.

use crate::webhook::StatusKind;

/// The customer-service window: free-form messages are allowed for 24 hours after the user's
/// last message.
pub const SERVICE_WINDOW_SECONDS: i64 = 24 * 3600;
/// The free-entry-point window (click-to-WhatsApp ads, page CTAs): 72 hours.
pub const FREE_ENTRY_POINT_SECONDS: i64 = 72 * 3600;

/// Whether a window that opened at `opened_at` (Unix seconds) of `length` seconds is open at
/// `now`: open from its start up to, not including, its end.
#[must_use]
pub fn window_open(opened_at: Option<i64>, length: i64, now: i64) -> bool {
    opened_at.is_some_and(|start| now >= start && now < start.saturating_add(length))
}

/// Whether the customer-service window is open at `now`, given the user's last inbound message.
#[must_use]
pub fn service_window_open(last_inbound_at: Option<i64>, now: i64) -> bool {
    window_open(last_inbound_at, SERVICE_WINDOW_SECONDS, now)
}

/// What the sender needs to know about a user's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversationFacts {
    /// The user's last inbound message, Unix seconds.
    pub last_inbound_at: Option<i64>,
    /// When Meta last refused a free-form message with 131047 (window closed), Unix seconds.
    pub window_closed_at: Option<i64>,
    /// The user opted out of marketing.
    pub marketing_opt_out: bool,
    /// The end of a 72 h free-entry-point window, Unix seconds.
    pub free_entry_point_until: Option<i64>,
}

impl ConversationFacts {
    /// Whether free-form messages may be sent at `now`: within 24 h of the last inbound message,
    /// unless Meta said the window was closed after that message.
    #[must_use]
    pub fn service_window_open(&self, now: i64) -> bool {
        service_window_open(self.last_inbound_at, now)
            && self.window_closed_at.is_none_or(|closed| self.last_inbound_at.is_some_and(|last| last > closed))
    }
}

impl ConversationFacts {
    /// The facts as forwarded with an event: when the service window closes, whether a free entry
    /// point is open, and consent.
    #[must_use]
    pub fn summary(&self, now: i64) -> serde_json::Value {
        let window_until =
            self.last_inbound_at.filter(|_| self.service_window_open(now)).map(|t| t + SERVICE_WINDOW_SECONDS);
        serde_json::json!({
            "service_window_open_until": window_until,
            "free_entry_point_until": self.free_entry_point_until.filter(|until| *until > now),
            "marketing_opt_out": self.marketing_opt_out,
        })
    }
}

/// The order of the forward statuses; `None` for statuses the machine does not track.
#[must_use]
pub fn status_rank(status: &StatusKind) -> Option<u8> {
    match status {
        StatusKind::Sent => Some(1),
        StatusKind::Delivered => Some(2),
        StatusKind::Read => Some(3),
        StatusKind::Played => Some(4),
        StatusKind::Failed => Some(9),
        _ => None,
    }
}

/// Whether an incoming status replaces the stored one. Statuses only move forward
/// (sent < delivered < read < played; delivered may be skipped); `failed` is terminal and applies
/// only to a message not yet read; out-of-order and repeated updates never downgrade.
#[must_use]
pub fn status_advances(current: Option<&StatusKind>, incoming: &StatusKind) -> bool {
    let Some(incoming_rank) = status_rank(incoming) else { return false };
    let Some(current) = current else { return true };
    let Some(current_rank) = status_rank(current) else { return true };
    match (current, incoming) {
        (StatusKind::Failed, _) => false,
        (_, StatusKind::Failed) => current_rank < 3,
        _ => incoming_rank > current_rank,
    }
}

/// A status update to record for a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate<'a> {
    /// The wamid.
    pub wamid: &'a str,
    /// The status (only tracked statuses are recorded).
    pub status: &'a StatusKind,
    /// Meta's timestamp, Unix seconds.
    pub at: Option<i64>,
    /// The recipient (BSUID or wa_id).
    pub recipient: Option<&'a str>,
    /// `biz_opaque_callback_data`, linking it to its send request.
    pub callback_data: Option<&'a str>,
    /// `pricing.category` (normalized, see [`pricing_category`]), `pricing.type`, `pricing.billable`.
    pub pricing: Option<(&'a str, &'a str, bool)>,
    /// `pricing.pricing_model` (`PMP`; `CBP` before 2025-07-01), when given.
    pub pricing_model: Option<&'a str>,
}

/// A pricing category as the ledger keeps it: lowercase, hyphens as underscores (Meta's status
/// table writes `authentication-international`, its examples `authentication_international`).
/// Every category is kept, known or not (`marketing_lite`, `referral_conversion`, `group_*`,
/// `general_purpose_ai`, and whatever Meta adds).
#[must_use]
pub fn pricing_category(category: &str) -> String {
    category.trim().to_ascii_lowercase().replace('-', "_")
}

/// Marketing opt-out and opt-in keywords, matched against a whole message after normalization
/// (case, accents, surrounding punctuation and spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutKeywords {
    /// Messages that opt the user out of marketing.
    pub stop: Vec<String>,
    /// Messages that opt the user back in.
    pub start: Vec<String>,
}

/// What a message says about marketing consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The user opts out of marketing.
    OptOut,
    /// The user opts back in.
    OptIn,
}

impl Default for OptOutKeywords {
    /// English, Spanish, Portuguese, French, German, Italian and Hindi (transliterated) keywords.
    fn default() -> Self {
        let list = |words: &[&str]| words.iter().map(|w| normalize(w)).collect();
        Self {
            stop: list(&[
                "stop",
                "stop all",
                "unsubscribe",
                "cancel",
                "end",
                "quit",
                "opt out",
                "optout",
                "parar",
                "pare",
                "baja",
                "darme de baja",
                "cancelar",
                "sair",
                "descadastrar",
                "arret",
                "arrêt",
                "stopp",
                "abmelden",
                "basta",
                "annulla",
                "band karo",
                "bandh",
            ]),
            start: list(&["start", "unstop", "resume", "subscribe", "iniciar", "voltar", "reprendre", "anmelden"]),
        }
    }
}

impl OptOutKeywords {
    /// Builds lists from comma-separated words (as configured in the environment).
    #[must_use]
    pub fn from_lists(stop: &str, start: &str) -> Self {
        let split = |text: &str| text.split(',').map(normalize).filter(|w| !w.is_empty()).collect();
        Self { stop: split(stop), start: split(start) }
    }

    /// What `text` says about consent, if anything.
    #[must_use]
    pub fn classify(&self, text: &str) -> Option<Consent> {
        let text = normalize(text);
        if self.stop.contains(&text) {
            Some(Consent::OptOut)
        } else if self.start.contains(&text) {
            Some(Consent::OptIn)
        } else {
            None
        }
    }
}

/// Lowercase, common Latin accents removed, inner whitespace collapsed, surrounding punctuation
/// and emoji trimmed.
#[must_use]
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            other => other,
        })
        .collect();
    let trimmed = folded.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prices per billable message by pricing category, in one currency, to turn the cost ledger into
/// an estimated cost. Written `CUR:category=price,category=price` (e.g. `INR:marketing=0.8,utility=0.1`);
/// use the rates Meta lists for your market.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCard {
    /// The currency code.
    pub currency: String,
    /// Price per billable message, by category.
    pub prices: std::collections::BTreeMap<String, f64>,
}

impl RateCard {
    /// The example rate card: Meta's per-message rates for recipients in India, in INR, effective
    /// 2026-01-01 (marketing 0.8631, utility and authentication 0.1150, before volume tiers).
    /// `wa stats` uses it when no rate card is configured, and says so.
    pub const EXAMPLE_INR: &str = "INR:marketing=0.8631,utility=0.115,authentication=0.115";

    /// [`Self::EXAMPLE_INR`], parsed.
    #[must_use]
    pub fn example_inr() -> Self {
        let prices = [("authentication", 0.115), ("marketing", 0.8631), ("utility", 0.115)];
        Self { currency: "INR".into(), prices: prices.into_iter().map(|(c, p)| (c.to_owned(), p)).collect() }
    }

    /// Parses `CUR:category=price,...`, naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (currency, list) = text.split_once(':').ok_or("a rate card looks like INR:marketing=0.8,utility=0.1")?;
        let currency = currency.trim();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("{currency:?} is not a three-letter currency code"));
        }
        let mut prices = std::collections::BTreeMap::new();
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (category, price) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not category=price"))?;
            let price: f64 = price.trim().parse().map_err(|_| format!("{price:?} is not a price"))?;
            if !price.is_finite() || price < 0.0 {
                return Err(format!("{price} is not a price"));
            }
            prices.insert(category.trim().to_ascii_lowercase(), price);
        }
        Ok(Self { currency: currency.to_ascii_uppercase(), prices })
    }

    /// The estimated cost of a month's ledger (`<category>#<pricing type>` counters): regular
    /// messages at the category's price; free types cost nothing.
    #[must_use]
    pub fn estimate(&self, ledger: &[(String, u64)]) -> f64 {
        ledger
            .iter()
            .filter_map(|(key, count)| {
                let (category, kind) = key.split_once('#')?;
                (kind == "regular").then(|| self.prices.get(category).copied().unwrap_or(0.0) * *count as f64)
            })
            .sum()
    }
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
#[must_use]
pub fn utc_datetime(unix_seconds: i64) -> String {
    let (year, month, day) = civil(unix_seconds.div_euclid(86_400));
    let secs = unix_seconds.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The `YYYY-MM` month (UTC) of a Unix time, for the cost ledger.
#[must_use]
pub fn month_of(unix_seconds: i64) -> String {
    let (year, month, _) = civil(unix_seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}")
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let day = doy - (153 * mp + 2) / 5 + 1;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permutations(items: &[StatusKind]) -> Vec<Vec<StatusKind>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first.clone());
                out.push(tail);
            }
        }
        out
    }

    #[test]
    fn all_24_orderings_only_move_forward() {
        let all = [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read, StatusKind::Failed];
        let orderings = permutations(&all);
        assert_eq!(orderings.len(), 24);
        for order in orderings {
            let mut current: Option<StatusKind> = None;
            let mut applied = Vec::new();
            for status in &order {
                if status_advances(current.as_ref(), status) {
                    current = Some(status.clone());
                    applied.push(status.clone());
                }
            }
            // Never a downgrade: what was applied is strictly increasing in rank.
            let ranks: Vec<u8> = applied.iter().filter_map(status_rank).collect();
            assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{order:?} applied {applied:?}");
            // The end state: whichever of read and failed came first.
            let first_final = order.iter().find(|s| matches!(s, StatusKind::Read | StatusKind::Failed)).cloned();
            assert_eq!(current, first_final, "{order:?}");
        }
    }

    #[test]
    fn repeats_and_unknown_statuses_change_nothing() {
        assert!(!status_advances(Some(&StatusKind::Delivered), &StatusKind::Delivered));
        assert!(!status_advances(Some(&StatusKind::Read), &StatusKind::Sent));
        assert!(!status_advances(Some(&StatusKind::Sent), &StatusKind::Unknown("new".into())));
        assert!(status_advances(Some(&StatusKind::Sent), &StatusKind::Read), "delivered may be skipped");
        assert!(status_advances(Some(&StatusKind::Read), &StatusKind::Played));
        assert!(!status_advances(Some(&StatusKind::Failed), &StatusKind::Read), "failed is terminal");
    }

    #[test]
    fn window_edges() {
        let last = 1_750_000_000;
        assert!(service_window_open(Some(last), last));
        assert!(service_window_open(Some(last), last + 23 * 3600 + 59 * 60 + 59), "23:59:59");
        assert!(!service_window_open(Some(last), last + 24 * 3600), "24:00:00");
        assert!(!service_window_open(Some(last), last + 24 * 3600 + 1), "24:00:01");
        assert!(!service_window_open(None, last));
        assert!(!service_window_open(Some(last), last - 5), "clock skew before the message");
        assert!(window_open(Some(last), FREE_ENTRY_POINT_SECONDS, last + 71 * 3600));
        assert!(!window_open(Some(last), FREE_ENTRY_POINT_SECONDS, last + 72 * 3600));
    }

    #[test]
    fn a_131047_closes_the_window_until_the_user_writes_again() {
        let last = 1_750_000_000;
        let mut facts = ConversationFacts { last_inbound_at: Some(last), ..Default::default() };
        assert!(facts.service_window_open(last + 60));
        facts.window_closed_at = Some(last + 120);
        assert!(!facts.service_window_open(last + 180));
        facts.last_inbound_at = Some(last + 300);
        assert!(facts.service_window_open(last + 360));
        assert!(!ConversationFacts::default().service_window_open(last), "no message from the user: closed");
    }

    #[test]
    fn opt_out_keywords_in_several_languages() {
        let k = OptOutKeywords::default();
        for text in ["STOP", " stop! ", "Stop.", "Darme de BAJA", "ARRÊT", "arret", "Descadastrar", "🛑 stop"] {
            assert_eq!(k.classify(text), Some(Consent::OptOut), "{text}");
        }
        for text in ["START", "Resume", "iniciar"] {
            assert_eq!(k.classify(text), Some(Consent::OptIn), "{text}");
        }
        for text in ["please don't stop", "stopwatch", "", "hello"] {
            assert_eq!(k.classify(text), None, "{text}");
        }
        let custom = OptOutKeywords::from_lists("halt, Nein ", "weiter");
        assert_eq!(custom.classify("NEIN"), Some(Consent::OptOut));
        assert_eq!(custom.classify("stop"), None);
        assert_eq!(custom.classify("Weiter"), Some(Consent::OptIn));
    }

    #[test]
    fn the_example_rate_card_is_its_text() {
        assert_eq!(RateCard::parse(RateCard::EXAMPLE_INR).unwrap(), RateCard::example_inr());
        let ledger = [("marketing#regular".to_owned(), 1000), ("utility#regular".to_owned(), 1000)];
        assert!((RateCard::example_inr().estimate(&ledger) - 978.1).abs() < 1e-9);
    }

    #[test]
    fn rate_cards_estimate_regular_messages_only() {
        let card = RateCard::parse("inr:marketing=0.8, Utility=0.1,authentication=0.1").unwrap();
        assert_eq!(card.currency, "INR");
        let ledger = [
            ("marketing#regular".to_owned(), 10),
            ("utility#regular".to_owned(), 5),
            ("service#free_customer_service".to_owned(), 7),
            ("marketing#free_entry_point".to_owned(), 2),
        ];
        assert!((card.estimate(&ledger) - 8.5).abs() < 1e-9);
        for bad in ["marketing=1", "RUPEES:marketing=1", "INR:marketing", "INR:marketing=-1", "INR:marketing=x"] {
            assert!(RateCard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months() {
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(1_750_275_992), "2025-06");
        assert_eq!(month_of(1_795_572_935), "2026-11");
        assert_eq!(month_of(951_782_400), "2000-02"); // 2000-02-29
        assert_eq!(month_of(951_868_799), "2000-02");
        assert_eq!(month_of(951_868_800), "2000-03");
        assert_eq!(month_of(-1), "1969-12");
        assert_eq!(utc_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_datetime(1_795_572_935), "2026-11-25T02:15:35Z");
    }
}
