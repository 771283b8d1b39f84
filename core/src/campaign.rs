//! Campaigns, pure: an audience (rows with a recipient, a language and template parameters) and
//! template variants with shares become SendRequests whose idempotency keys derive from the
//! campaign and the recipient (re-running a campaign sends nobody twice), whose variant is chosen
//! deterministically, and whose `callback_data` names the campaign and the variant (so statuses,
//! outcomes and the bus's `campaign` / `variant` fields carry them).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::send::{Category, Recipient, SendRequest};

/// Most characters of a campaign id (it travels in every request's key and callback data).
pub const MAX_CAMPAIGN_ID: usize = 64;
/// The prefix of every campaign request's idempotency key: `c:<campaign>:<digest>`.
pub const KEY_PREFIX: &str = "c:";

/// A campaign input that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CampaignError {
    /// The campaign id.
    #[error("campaign id: {0}")]
    Id(String),
    /// A `--variant` argument.
    #[error("variant {0:?}: {1}")]
    Variant(String, String),
    /// The audience file.
    #[error("audience line {line}: {reason}")]
    Audience {
        /// 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A template variant and its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Its name (`a`, `b`, `short_copy`).
    pub name: String,
    /// The template.
    pub template: String,
    /// Its share (weights; they need not add up to 100).
    pub share: u32,
}

fn plain(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Checks a campaign id: 1–64 of `A-Z a-z 0-9 _ - .`.
pub fn check_id(id: &str) -> Result<(), CampaignError> {
    if id.len() > MAX_CAMPAIGN_ID || !plain(id) {
        return Err(CampaignError::Id(format!("{id:?} must be 1-{MAX_CAMPAIGN_ID} of A-Z a-z 0-9 _ - .")));
    }
    Ok(())
}

impl Variant {
    /// Parses `name=template:share` (`a=reminder_v1:50`); the share defaults to 1.
    pub fn parse(text: &str) -> Result<Self, CampaignError> {
        let bad = |why: &str| CampaignError::Variant(text.to_owned(), why.to_owned());
        let (name, rest) = text.split_once('=').ok_or_else(|| bad("expected name=template:share"))?;
        let (template, share) = match rest.rsplit_once(':') {
            Some((template, share)) => {
                (template, share.trim().parse::<u32>().map_err(|_| bad("the share must be a whole number"))?)
            }
            None => (rest, 1),
        };
        if !plain(name) || name.len() > 32 {
            return Err(bad("the name must be 1-32 of A-Z a-z 0-9 _ - ."));
        }
        if template.is_empty()
            || template.len() > 512
            || !template.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad("the template name must be Meta's: lower case letters, digits and _"));
        }
        if share == 0 {
            return Err(bad("the share must be at least 1"));
        }
        Ok(Self { name: name.to_owned(), template: template.to_owned(), share })
    }
}

/// Checks a set of variants: at least one, names unique.
pub fn check_variants(variants: &[Variant]) -> Result<(), CampaignError> {
    if variants.is_empty() {
        return Err(CampaignError::Variant(String::new(), "name at least one --variant".into()));
    }
    for (i, v) in variants.iter().enumerate() {
        if variants[..i].iter().any(|o| o.name == v.name) {
            return Err(CampaignError::Variant(v.name.clone(), "named twice".into()));
        }
    }
    Ok(())
}

fn digest(campaign: &str, recipient: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(campaign.as_bytes());
    hash.update([0]);
    hash.update(recipient.as_bytes());
    hash.finalize().into()
}

/// The recipient as keys see it: a phone number's digits (with or without `+`), a BSUID as given.
fn canonical(recipient: &str) -> &str {
    recipient.strip_prefix('+').unwrap_or(recipient)
}

/// The idempotency key of a recipient's request: `c:<campaign>:<24 hex digits of SHA-256>` — the
/// same on every run, and no phone number in it.
#[must_use]
pub fn key(campaign: &str, recipient: &str) -> String {
    let d = digest(campaign, canonical(recipient));
    format!("{KEY_PREFIX}{campaign}:{}", hex::encode(&d[..12]))
}

/// The campaign a key belongs to (`None` for a key that is not a campaign's).
#[must_use]
pub fn campaign_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX)?.rsplit_once(':').map(|(campaign, _)| campaign)
}

/// The variant of a recipient: a point in the total share drawn from the key's digest, so the same
/// campaign and recipient always get the same variant, and variants get their shares.
#[must_use]
pub fn assign<'a>(campaign: &str, recipient: &str, variants: &'a [Variant]) -> &'a Variant {
    let total: u64 = variants.iter().map(|v| u64::from(v.share)).sum::<u64>().max(1);
    let d = digest(campaign, canonical(recipient));
    let mut point = u64::from_be_bytes([d[12], d[13], d[14], d[15], d[16], d[17], d[18], d[19]]) % total;
    for variant in variants {
        if point < u64::from(variant.share) {
            return variant;
        }
        point -= u64::from(variant.share);
    }
    &variants[variants.len() - 1]
}

/// The callback data of a campaign's requests: `{"campaign":…,"variant":…}`.
#[must_use]
pub fn callback_data(campaign: &str, variant: &str) -> String {
    json!({"campaign": campaign, "variant": variant}).to_string()
}

/// One audience row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Phone number or BSUID.
    pub to: String,
    /// The template language, when the row names one.
    pub language: Option<String>,
    /// Body parameters: (name, value); positional ones are named `1`, `2`, …
    pub parameters: Vec<(String, String)>,
}

/// Parses an audience file: CSV with a header; a `to` column (phone number or BSUID), optionally
/// `language`, and the template's body parameters: columns named `1`, `2`, … are positional,
/// other names are named parameters. Quoted fields may hold commas and doubled quotes. Empty lines
/// are skipped.
pub fn parse_audience(text: &str) -> Result<Vec<Row>, CampaignError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(CampaignError::Audience { line: 1, reason: "the file is empty".into() });
    };
    let header =
        fields(header.trim_start_matches('\u{feff}')).map_err(|reason| CampaignError::Audience { line: 1, reason })?;
    let to_at = header
        .iter()
        .position(|h| h == "to")
        .ok_or(CampaignError::Audience { line: 1, reason: "no `to` column".into() })?;
    let language_at = header.iter().position(|h| h == "language");
    let mut rows = Vec::new();
    for (index, line) in lines {
        let n = index + 1;
        let values = fields(line).map_err(|reason| CampaignError::Audience { line: n, reason })?;
        if values.len() != header.len() {
            return Err(CampaignError::Audience {
                line: n,
                reason: format!("{} fields where the header has {}", values.len(), header.len()),
            });
        }
        let to = values[to_at].trim().to_owned();
        Recipient::parse(&to).map_err(|v| CampaignError::Audience { line: n, reason: format!("to: {}", v.detail) })?;
        let parameters = header
            .iter()
            .zip(&values)
            .enumerate()
            .filter(|(i, _)| *i != to_at && Some(*i) != language_at)
            .map(|(_, (name, value))| (name.clone(), value.clone()))
            .collect();
        let language = language_at.map(|i| values[i].trim().to_owned()).filter(|l| !l.is_empty());
        rows.push(Row { to, language, parameters });
    }
    Ok(rows)
}

/// The fields of one CSV line (RFC 4180 quoting).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed (fields may not span lines)".into());
    }
    out.push(field);
    Ok(out)
}

/// What a campaign is sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The campaign id.
    pub campaign: &'a str,
    /// The business numbers the campaign goes out from (at least one), in turn by audience row
    /// (the same file gives each row the same number again; a request's key does not depend on
    /// it, so nobody is messaged twice whatever number a re-run picks), so that the numbers'
    /// send rates add up.
    pub phone_number_ids: &'a [String],
    /// The variants.
    pub variants: &'a [Variant],
    /// The language of rows without one.
    pub default_language: &'a str,
    /// The category the requests declare (marketing suppresses opted-out users).
    pub category: Option<Category>,
}

/// The SendRequest of one row, and its variant.
pub fn request<'a>(plan: &Plan<'a>, row: &Row, ordinal: usize) -> Result<(SendRequest, &'a Variant), CampaignError> {
    let variant = assign(plan.campaign, &row.to, plan.variants);
    let parameters: Vec<Value> = row
        .parameters
        .iter()
        .map(|(name, value)| {
            if name.bytes().all(|b| b.is_ascii_digit()) {
                json!({"type": "text", "text": value})
            } else {
                json!({"type": "text", "parameter_name": name, "text": value})
            }
        })
        .collect();
    let mut template = Map::new();
    template.insert("name".into(), variant.template.clone().into());
    template.insert("language".into(), json!({"code": row.language.as_deref().unwrap_or(plan.default_language)}));
    if !parameters.is_empty() {
        template.insert("components".into(), json!([{"type": "body", "parameters": parameters}]));
    }
    let message = json!({"type": "template", "template": template});
    let request = SendRequest {
        phone_number_id: plan
            .phone_number_ids
            .get(ordinal % plan.phone_number_ids.len().max(1))
            .cloned()
            .unwrap_or_default(),
        to: Some(row.to.clone()),
        message: message.as_object().cloned().unwrap_or_default(),
        idempotency_key: Some(key(plan.campaign, &row.to)),
        callback_data: Some(callback_data(plan.campaign, &variant.name)),
        fallback: None,
        category: plan.category,
        delivery: crate::send::Delivery::default(),
        fallback_channels: None,
    };
    request.validate().map_err(|v| CampaignError::Audience { line: 0, reason: v.to_string() })?;
    Ok((request, variant))
}

/// What is known of one campaign request, for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendFacts {
    /// Its variant (from its callback data).
    pub variant: String,
    /// Its `send_result`, once there is one.
    pub outcome: Option<crate::outcome::SendOutcome>,
    /// The furthest status Meta reported (`sent`, `delivered`, `read`, `failed`).
    pub status: Option<String>,
    /// The pricing category a status named.
    pub pricing_category: Option<String>,
    /// The person's last message to the business, Unix seconds.
    pub last_inbound_at: Option<i64>,
}

/// One variant's funnel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Funnel {
    /// The variant.
    pub variant: String,
    /// Requests queued by `wa campaign send`.
    pub queued: u64,
    /// Opted-out recipients not queued.
    pub suppressed: u64,
    /// Requests with an outcome (the rest are still queued or in flight).
    pub decided: u64,
    /// Accepted by Meta.
    pub sent: u64,
    /// Delivered (or read).
    pub delivered: u64,
    /// Read.
    pub read: u64,
    /// An inbound message from the person within the reply window after the send.
    pub replied: u64,
    /// Not sent or not delivered, by class (`permanent`, `window_closed`, `opted_out`, `unknown`,
    /// `delivery_failed`).
    pub failed: std::collections::BTreeMap<String, u64>,
    /// Billable messages by pricing category.
    pub billable: std::collections::BTreeMap<String, u64>,
}

/// The funnel of every variant: `counts` are (variant, queued, suppressed) as `wa campaign send`
/// recorded them, `sends` what the state table knows of each request; `reply_window_s` is how
/// long after its send an inbound message counts as a reply (the send's acceptance stands in for
/// its delivery, a few seconds apart).
#[must_use]
pub fn report(counts: &[(String, u64, u64)], sends: &[SendFacts], reply_window_s: i64) -> Vec<Funnel> {
    use crate::outcome::OutcomeStatus;
    let mut funnels: std::collections::BTreeMap<String, Funnel> = std::collections::BTreeMap::new();
    for (variant, queued, suppressed) in counts {
        let f =
            funnels.entry(variant.clone()).or_insert_with(|| Funnel { variant: variant.clone(), ..Funnel::default() });
        f.queued += queued;
        f.suppressed += suppressed;
    }
    for send in sends {
        let f = funnels
            .entry(send.variant.clone())
            .or_insert_with(|| Funnel { variant: send.variant.clone(), ..Funnel::default() });
        let Some(outcome) = &send.outcome else { continue };
        f.decided += 1;
        let class = match outcome.status {
            OutcomeStatus::Accepted => None,
            OutcomeStatus::Failed => Some(outcome.error.as_ref().map_or("permanent", |e| e.class.as_str())),
            OutcomeStatus::WindowClosed => Some("window_closed"),
            OutcomeStatus::OptedOut => Some("opted_out"),
            OutcomeStatus::Unknown => Some("unknown"),
        };
        if let Some(class) = class {
            *f.failed.entry(class.to_owned()).or_default() += 1;
            continue;
        }
        f.sent += 1;
        match send.status.as_deref() {
            Some("delivered") => f.delivered += 1,
            Some("read") => {
                f.delivered += 1;
                f.read += 1;
            }
            Some("failed") => *f.failed.entry("delivery_failed".into()).or_default() += 1,
            _ => {}
        }
        if let Some(category) = &send.pricing_category {
            *f.billable.entry(category.to_ascii_lowercase()).or_default() += 1;
        }
        let sent_at = i64::try_from(outcome.at / 1000).unwrap_or(i64::MAX);
        if send.last_inbound_at.is_some_and(|at| at >= sent_at && at <= sent_at.saturating_add(reply_window_s)) {
            f.replied += 1;
        }
    }
    funnels.into_values().collect()
}

/// The variant named by a campaign request's callback data.
#[must_use]
pub fn variant_of(callback_data: Option<&str>) -> Option<String> {
    let value: Value = serde_json::from_str(callback_data?).ok()?;
    value.get("variant")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants() -> Vec<Variant> {
        vec![Variant::parse("a=reminder_v1:50").unwrap(), Variant::parse("b=reminder_v2:50").unwrap()]
    }

    #[test]
    fn variants_parse_as_name_template_share() {
        assert_eq!(
            Variant::parse("a=reminder_v1:30").unwrap(),
            Variant { name: "a".into(), template: "reminder_v1".into(), share: 30 }
        );
        assert_eq!(Variant::parse("b=promo").unwrap().share, 1);
        for bad in ["reminder_v1:50", "a=:5", "a=Reminder:5", "a=x:0", "a=x:-1", "=x:1", "a b=x:1"] {
            assert!(Variant::parse(bad).is_err(), "{bad}");
        }
        let mut twice = variants();
        twice[1].name = "a".into();
        assert!(check_variants(&twice).is_err());
        assert!(check_variants(&[]).is_err());
        assert!(check_id("spring-2026").is_ok());
        assert!(check_id("spring 2026").is_err() && check_id("").is_err() && check_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn keys_and_variants_are_deterministic_and_private() {
        let v = variants();
        let k = key("spring", "+4915112345678");
        assert_eq!(k, key("spring", "4915112345678"), "with or without +");
        assert_ne!(k, key("autumn", "4915112345678"));
        assert!(!k.contains("4915112345678"), "no phone number in a key");
        assert_eq!(campaign_of(&k), Some("spring"));
        assert_eq!(campaign_of("order-7"), None);
        for to in ["4915112345678", "US.13491208655302741918"] {
            assert_eq!(assign("spring", to, &v).name, assign("spring", to, &v).name);
        }
    }

    #[test]
    fn variants_get_their_shares() {
        let v = vec![Variant::parse("a=t_a:70").unwrap(), Variant::parse("b=t_b:30").unwrap()];
        let n = 20_000;
        let a = (0..n).filter(|i| assign("c1", &format!("4915{i:09}"), &v).name == "a").count();
        let share = a as f64 / f64::from(n);
        assert!((0.68..0.72).contains(&share), "{share}");
    }

    #[test]
    fn audiences_parse_with_quotes_languages_and_parameters() {
        let csv = "\u{feff}to,language,1,first_name\n+4915112345678,de,\"Müller, Ana\",Ana\n\n16505551234,,\"say \"\"hi\"\"\",Ben\r\n";
        let rows = parse_audience(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].language.as_deref(), Some("de"));
        assert_eq!(rows[0].parameters, vec![("1".into(), "Müller, Ana".into()), ("first_name".into(), "Ana".into())]);
        assert_eq!(rows[1].language, None);
        assert_eq!(rows[1].parameters[0].1, "say \"hi\"");
        let line = |csv: &str| match parse_audience(csv) {
            Err(CampaignError::Audience { line, .. }) => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line(""), 1);
        assert_eq!(line("phone\n1"), 1);
        assert_eq!(line("to,1\n16505551234"), 2);
        assert_eq!(line("to\n16505551234\nnot-a-number"), 3);
        assert_eq!(line("to,1\n16505551234,\"open"), 2);
    }

    #[test]
    fn the_report_counts_each_stage_once() {
        use crate::graph_error::ErrorClass;
        use crate::outcome::{OutcomeStatus, SendOutcome};
        let outcome = |status: OutcomeStatus, at_s: u64| {
            let base = SendOutcome::new("k", Some(&callback_data("c", "a")), Some("1"), Some("2"), 0);
            let mut o = match status {
                OutcomeStatus::Accepted => base.accepted(Some("wamid.1".into()), None),
                OutcomeStatus::Failed => base.failed(Some(131_026), ErrorClass::Permanent, "x"),
                other => base.refused(other, "x"),
            };
            o.at = at_s * 1000;
            o
        };
        let send = |status: OutcomeStatus, meta: Option<&str>, inbound: Option<i64>| SendFacts {
            variant: "a".into(),
            outcome: Some(outcome(status, 1_000)),
            status: meta.map(str::to_owned),
            pricing_category: meta.map(|_| "MARKETING".to_owned()),
            last_inbound_at: inbound,
        };
        let sends = vec![
            send(OutcomeStatus::Accepted, Some("read"), Some(1_500)),
            send(OutcomeStatus::Accepted, Some("delivered"), Some(999)),
            send(OutcomeStatus::Accepted, Some("delivered"), Some(1_000 + 90_000)),
            send(OutcomeStatus::Accepted, Some("failed"), None),
            send(OutcomeStatus::Accepted, None, None),
            send(OutcomeStatus::Failed, None, None),
            send(OutcomeStatus::OptedOut, None, None),
            SendFacts { variant: "a".into(), ..SendFacts::default() },
            SendFacts {
                variant: "b".into(),
                outcome: Some(outcome(OutcomeStatus::WindowClosed, 1)),
                ..SendFacts::default()
            },
        ];
        let funnels = report(&[("a".into(), 9, 2), ("b".into(), 1, 0)], &sends, 86_400);
        let a = &funnels[0];
        assert_eq!((a.queued, a.suppressed, a.decided, a.sent, a.delivered, a.read, a.replied), (9, 2, 7, 5, 3, 1, 1));
        assert_eq!(a.failed.get("permanent"), Some(&1));
        assert_eq!(a.failed.get("opted_out"), Some(&1));
        assert_eq!(a.failed.get("delivery_failed"), Some(&1));
        assert_eq!(a.billable.get("marketing"), Some(&4));
        assert_eq!(funnels[1].failed.get("window_closed"), Some(&1));
        assert_eq!(variant_of(Some(&callback_data("c", "b"))).as_deref(), Some("b"));
        assert_eq!(variant_of(Some("order-7")), None);
    }

    #[test]
    fn a_row_becomes_a_valid_template_request() {
        let v = variants();
        let numbers = vec!["106540352242922".to_owned()];
        let plan = Plan {
            campaign: "spring",
            phone_number_ids: &numbers,
            variants: &v,
            default_language: "en",
            category: Some(Category::Marketing),
        };
        let rows = parse_audience("to,1,first_name\n16505551234,10:30,Ana").unwrap();
        let (request, variant) = request(&plan, &rows[0], 0).unwrap();
        assert_eq!(request.idempotency_key.as_deref(), Some(key("spring", "16505551234").as_str()));
        let callback: Value = serde_json::from_str(request.callback_data.as_deref().unwrap()).unwrap();
        assert_eq!(callback, json!({"campaign": "spring", "variant": variant.name}));
        let template = &request.message["template"];
        assert_eq!(template["name"], json!(variant.template));
        assert_eq!(template["language"]["code"], "en");
        assert_eq!(template["components"][0]["parameters"][0], json!({"type": "text", "text": "10:30"}));
        assert_eq!(
            template["components"][0]["parameters"][1],
            json!({"type": "text", "parameter_name": "first_name", "text": "Ana"})
        );
        assert_eq!(request.category, Some(Category::Marketing));
        let fields = crate::fanout::fields(&json!({"kind": "send_result", "callback_data": request.callback_data}));
        assert_eq!(
            (fields.campaign.as_deref(), fields.variant.as_deref()),
            (Some("spring"), Some(variant.name.as_str()))
        );
    }

    #[test]
    fn rows_take_the_numbers_in_turn() {
        let v = variants();
        let numbers: Vec<String> = ["1", "2", "3"].iter().map(|n| (*n).to_owned()).collect();
        let plan = Plan {
            campaign: "spread",
            phone_number_ids: &numbers,
            variants: &v,
            default_language: "en",
            category: None,
        };
        let rows = parse_audience("to\n16505550001\n16505550002\n16505550003\n16505550004").unwrap();
        let picked: Vec<String> =
            rows.iter().enumerate().map(|(i, row)| request(&plan, row, i).unwrap().0.phone_number_id).collect();
        assert_eq!(picked, ["1", "2", "3", "1"]);
    }
}
