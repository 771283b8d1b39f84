//! Fallback channels: an SMS and/or an e-mail a send request carries (`fallback_channels`) for when
//! WhatsApp cannot deliver it, and the decision whether to use them.
//!
//! A request ends undelivered when its outcome is `failed` or `window_closed` (refused with no
//! fallback template), or when Meta accepted it and a `failed` status followed (a
//! `delivery_failure`). Then the fallback function sends each channel once. Never when:
//! - the outcome is `accepted` (a `delivery_failure` may follow), `opted_out`, or `unknown` (an
//!   `at_most_once` request WhatsApp may have delivered: a second channel could say it twice);
//! - the request is marketing (declared, or its template's learned category) and the person has
//!   opted out of marketing, or Meta refused it as such (131050).
//!
//! The result of each channel is one event: `fallback_sent`, `fallback_failed`, or one
//! `fallback_skipped` for the request. Schema: `schemas/fallback-result.v1.json`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::OutcomeStatus;
use crate::send::{Category, SendRequest, Violation};

/// Most characters of a fallback SMS (SNS splits longer texts into parts; 1,600 is its limit).
pub const MAX_SMS_TEXT: usize = 1600;
/// Most characters of a fallback e-mail's subject.
pub const MAX_SUBJECT: usize = 998;
/// Most bytes of a fallback e-mail's text and HTML together.
pub const MAX_EMAIL_BODY: usize = 200_000;
/// Meta's code for "the user stopped marketing messages".
pub const MARKETING_STOPPED: i64 = 131_050;

/// The channels of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackChannels {
    /// A text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<Sms>,
    /// An e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

/// A fallback SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sms {
    /// E.164: `+` and 8–15 digits.
    pub to: String,
    /// The text.
    pub text: String,
}

/// A fallback e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// One address.
    pub to: String,
    /// The subject (one line).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML body, sent beside the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// A channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// SMS.
    Sms,
    /// E-mail.
    Email,
}

impl Channel {
    /// `sms` or `email`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }
}

fn violation(rule: &'static str, detail: impl Into<String>) -> Violation {
    Violation { rule, detail: detail.into() }
}

/// Whether `to` is an E.164 number as SMS providers take it: `+`, then 8–15 digits, no leading 0.
#[must_use]
pub fn is_e164(to: &str) -> bool {
    to.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// Whether `to` is one plain address (`local@domain.tld`): no display name, no list, no spaces.
#[must_use]
pub fn is_address(to: &str) -> bool {
    let Some((local, domain)) = to.rsplit_once('@') else {
        return false;
    };
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b';' | b'"'));
    to.len() <= 254
        && (1..=64).contains(&local.len())
        && !local.contains('@')
        && plain(local)
        && plain(domain)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty() && label.len() <= 63)
}

impl FallbackChannels {
    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.sms.is_none() && self.email.is_none() {
            return Err(violation("fallback_channels.empty", "name an sms, an email, or both"));
        }
        if let Some(sms) = &self.sms {
            if !is_e164(&sms.to) {
                return Err(violation("fallback_channels.sms.to", "must be E.164: + and 8-15 digits"));
            }
            let n = sms.text.chars().count();
            if n == 0 || n > MAX_SMS_TEXT {
                return Err(violation("fallback_channels.sms.text", format!("{n} characters, 1-{MAX_SMS_TEXT}")));
            }
        }
        if let Some(email) = &self.email {
            if !is_address(&email.to) {
                return Err(violation("fallback_channels.email.to", "must be one address, local@domain"));
            }
            let n = email.subject.chars().count();
            if n == 0 || n > MAX_SUBJECT || email.subject.contains(['\r', '\n']) {
                return Err(violation(
                    "fallback_channels.email.subject",
                    format!("one line of 1-{MAX_SUBJECT} characters"),
                ));
            }
            let body = email.text.len() + email.html.as_ref().map_or(0, String::len);
            if email.text.is_empty() || body > MAX_EMAIL_BODY {
                return Err(violation(
                    "fallback_channels.email.text",
                    format!("text must not be empty; text and html at most {MAX_EMAIL_BODY} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// The channels named, SMS first.
    #[must_use]
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::with_capacity(2);
        if self.sms.is_some() {
            out.push(Channel::Sms);
        }
        if self.email.is_some() {
            out.push(Channel::Email);
        }
        out
    }
}

/// What ended a request, read from an event on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// What happened.
    pub cause: Cause,
    /// Meta's error code, when there is one.
    pub code: Option<i64>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its `send_result`.
    Outcome(OutcomeStatus),
    /// A `failed` status after Meta accepted it.
    DeliveryFailure,
}

impl Cause {
    /// `failed`, `window_closed`, … or `delivery_failure`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outcome(OutcomeStatus::Accepted) => "accepted",
            Self::Outcome(OutcomeStatus::Failed) => "failed",
            Self::Outcome(OutcomeStatus::WindowClosed) => "window_closed",
            Self::Outcome(OutcomeStatus::OptedOut) => "opted_out",
            Self::Outcome(OutcomeStatus::Unknown) => "unknown",
            Self::DeliveryFailure => "delivery_failure",
        }
    }
}

/// The trigger in an event: a `send_result` or a `delivery_failure` naming its request's key,
/// given bare or inside a bus entry's `detail.event`; `None` for anything else.
#[must_use]
pub fn trigger(event: &Value) -> Option<Trigger> {
    let event = match event.pointer("/detail/event") {
        Some(inner) => inner,
        None => event,
    };
    let key = event.get("idempotency_key").and_then(Value::as_str).filter(|k| !k.is_empty())?.to_owned();
    let code = event.pointer("/error/code").and_then(Value::as_i64);
    let cause = match event.get("kind").and_then(Value::as_str)? {
        "send_result" => Cause::Outcome(serde_json::from_value(event.get("status")?.clone()).ok()?),
        "delivery_failure" => Cause::DeliveryFailure,
        _ => return None,
    };
    Some(Trigger { idempotency_key: key, cause, code })
}

/// The events the fallback function subscribes to, by their bus fields: every `delivery_failure`,
/// and the `send_result`s that did not reach WhatsApp (`failed`, `window_closed`). The stack's
/// `FallbackRule` is the same rule in EventBridge's pattern language (a test holds them together);
/// the local stack routes with this function.
#[must_use]
pub fn wants(fields: &crate::fanout::Fields) -> bool {
    match fields.kind.as_deref() {
        Some("delivery_failure") => true,
        Some("send_result") => matches!(fields.status.as_deref(), Some("failed" | "window_closed")),
        _ => false,
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Send these channels.
    Send(Vec<Channel>),
    /// Nothing, for this reason (published as `fallback_skipped` when the request had channels).
    Skip(&'static str),
}

/// Skip reasons.
pub const DELIVERED: &str = "delivered: the request was accepted";
/// The send's result is unknown.
pub const UNKNOWN: &str = "unknown: WhatsApp may have delivered it (at_most_once)";
/// Marketing to an opted-out person.
pub const OPTED_OUT: &str = "opted_out: marketing to a user who stopped marketing messages";

/// Whether a request is marketing: declared so, or a template whose learned category is marketing.
#[must_use]
pub fn is_marketing(request: &SendRequest, learned_category: Option<&str>) -> bool {
    match request.category {
        Some(category) => category == Category::Marketing,
        None => {
            request.message.get("type").and_then(Value::as_str) == Some("template")
                && learned_category == Some("marketing")
        }
    }
}

/// The decision: which of the request's channels to send, given how it ended, whether it is
/// marketing and whether the person has opted out of marketing now.
#[must_use]
pub fn decide(trigger: &Trigger, channels: &FallbackChannels, marketing: bool, opted_out: bool) -> Plan {
    match trigger.cause {
        Cause::Outcome(OutcomeStatus::Accepted) => return Plan::Skip(DELIVERED),
        Cause::Outcome(OutcomeStatus::Unknown) => return Plan::Skip(UNKNOWN),
        Cause::Outcome(OutcomeStatus::OptedOut) => return Plan::Skip(OPTED_OUT),
        Cause::Outcome(OutcomeStatus::Failed | OutcomeStatus::WindowClosed) | Cause::DeliveryFailure => {}
    }
    if marketing && (opted_out || trigger.code == Some(MARKETING_STOPPED)) {
        return Plan::Skip(OPTED_OUT);
    }
    Plan::Send(channels.channels())
}

/// `kind: "fallback_sent" | "fallback_failed" | "fallback_skipped"`: what became of a request's
/// fallback. No phone number, address or text: those stay in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackResult {
    /// Always 1.
    pub version: u32,
    /// `fallback_sent`, `fallback_failed` or `fallback_skipped`.
    pub kind: String,
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// The channel (absent for `fallback_skipped`).
    pub channel: Option<Channel>,
    /// The producer's correlation data, echoed.
    pub callback_data: Option<String>,
    /// The business number.
    pub phone_number_id: Option<String>,
    /// What ended the request: `failed`, `window_closed`, `delivery_failure`, …
    pub trigger: String,
    /// The provider's message id, when sent (SNS `MessageId`, SES `MessageId`).
    pub provider_message_id: Option<String>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// When it was decided, Unix milliseconds.
    pub at: u64,
}

impl FallbackResult {
    /// A result for the request `request` and trigger, with no outcome yet.
    #[must_use]
    pub fn new(kind: &str, trigger: &Trigger, request: &SendRequest, channel: Option<Channel>, at: u64) -> Self {
        Self {
            version: 1,
            kind: kind.to_owned(),
            idempotency_key: trigger.idempotency_key.clone(),
            channel,
            callback_data: request.callback_data.clone(),
            phone_number_id: Some(request.phone_number_id.clone()),
            trigger: trigger.cause.as_str().to_owned(),
            provider_message_id: None,
            reason: None,
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both() -> FallbackChannels {
        FallbackChannels {
            sms: Some(Sms { to: "+4915112345678".into(), text: "Your parcel could not be delivered".into() }),
            email: Some(Email {
                to: "ana@example.com".into(),
                subject: "Your parcel".into(),
                text: "It could not be delivered".into(),
                html: None,
            }),
        }
    }

    fn trig(cause: Cause, code: Option<i64>) -> Trigger {
        Trigger { idempotency_key: "k".into(), cause, code }
    }

    #[test]
    fn channels_are_validated() {
        assert!(both().validate().is_ok());
        let rule = |c: FallbackChannels| c.validate().unwrap_err().rule;
        assert_eq!(rule(FallbackChannels { sms: None, email: None }), "fallback_channels.empty");
        for to in ["4915112345678", "+0491511234", "+1234567", "+1234567890123456", "+49 151", "+49151x2345678"] {
            let mut c = both();
            c.sms.as_mut().unwrap().to = to.into();
            assert_eq!(rule(c), "fallback_channels.sms.to", "{to}");
        }
        let mut c = both();
        c.sms.as_mut().unwrap().text = "é".repeat(MAX_SMS_TEXT + 1);
        assert_eq!(rule(c), "fallback_channels.sms.text");
        for to in [
            "ana",
            "ana@localhost",
            "Ana <ana@example.com>",
            "a@b.com,c@d.com",
            "a b@example.com",
            "@example.com",
            "a@.com",
        ] {
            let mut c = both();
            c.email.as_mut().unwrap().to = to.into();
            assert_eq!(rule(c), "fallback_channels.email.to", "{to}");
        }
        let mut c = both();
        c.email.as_mut().unwrap().subject = "a\r\nBcc: x@y.com".into();
        assert_eq!(rule(c), "fallback_channels.email.subject", "no header injection");
        let mut c = both();
        c.email.as_mut().unwrap().text = String::new();
        assert_eq!(rule(c), "fallback_channels.email.text");
        let parsed: Result<FallbackChannels, _> =
            serde_json::from_value(json!({"sms": {"to": "+4915112345678", "text": "x", "from": "y"}}));
        assert!(parsed.is_err(), "unknown fields are refused");
    }

    #[test]
    fn the_decision_table() {
        let all = Plan::Send(vec![Channel::Sms, Channel::Email]);
        let table = [
            (Cause::Outcome(OutcomeStatus::Failed), None, false, false, all.clone()),
            (Cause::Outcome(OutcomeStatus::WindowClosed), None, false, false, all.clone()),
            (Cause::DeliveryFailure, Some(131_026), false, false, all.clone()),
            (Cause::Outcome(OutcomeStatus::Accepted), None, false, false, Plan::Skip(DELIVERED)),
            (Cause::Outcome(OutcomeStatus::Unknown), None, false, false, Plan::Skip(UNKNOWN)),
            (Cause::Outcome(OutcomeStatus::OptedOut), None, true, true, Plan::Skip(OPTED_OUT)),
            (Cause::Outcome(OutcomeStatus::Failed), None, true, true, Plan::Skip(OPTED_OUT)),
            (Cause::DeliveryFailure, Some(MARKETING_STOPPED), true, false, Plan::Skip(OPTED_OUT)),
            // Opted out, but not marketing: a utility notice still reaches the person.
            (Cause::Outcome(OutcomeStatus::Failed), None, false, true, all.clone()),
            (Cause::DeliveryFailure, Some(MARKETING_STOPPED), false, false, all),
        ];
        for (cause, code, marketing, opted_out, expected) in table {
            assert_eq!(
                decide(&trig(cause, code), &both(), marketing, opted_out),
                expected,
                "{cause:?} {code:?} {marketing} {opted_out}"
            );
        }
        let sms_only = FallbackChannels { email: None, ..both() };
        assert_eq!(
            decide(&trig(Cause::DeliveryFailure, None), &sms_only, false, false),
            Plan::Send(vec![Channel::Sms])
        );
    }

    #[test]
    fn the_rule_takes_undelivered_requests_only() {
        let table = [
            (json!({"kind": "delivery_failure"}), true),
            (json!({"kind": "send_result", "status": "failed"}), true),
            (json!({"kind": "send_result", "status": "window_closed"}), true),
            (json!({"kind": "send_result", "status": "accepted"}), false),
            (json!({"kind": "send_result", "status": "opted_out"}), false),
            (json!({"kind": "send_result", "status": "unknown"}), false),
            (json!({"kind": "status", "payload": {"status": "failed"}}), false),
            (json!({"kind": "fallback_failed", "status": "failed"}), false),
            (json!({"kind": "message"}), false),
        ];
        for (event, expected) in table {
            assert_eq!(wants(&crate::fanout::fields(&event)), expected, "{event}");
        }
    }

    #[test]
    fn triggers_are_read_bare_or_from_a_bus_entry() {
        let outcome = json!({"kind": "send_result", "idempotency_key": "k1", "status": "window_closed"});
        assert_eq!(
            trigger(&outcome),
            Some(Trigger {
                idempotency_key: "k1".into(),
                cause: Cause::Outcome(OutcomeStatus::WindowClosed),
                code: None
            })
        );
        let entry = json!({"detail-type": "delivery_failure", "detail": {"kind": "delivery_failure", "event": {
            "kind": "delivery_failure", "idempotency_key": "k2", "error": {"code": 131026}}}});
        assert_eq!(
            trigger(&entry),
            Some(Trigger { idempotency_key: "k2".into(), cause: Cause::DeliveryFailure, code: Some(131_026) })
        );
        for other in [
            json!({"kind": "delivery_failure", "idempotency_key": null}),
            json!({"kind": "send_result", "idempotency_key": "k", "status": "lost"}),
            json!({"kind": "status", "idempotency_key": "k"}),
            json!("text"),
        ] {
            assert_eq!(trigger(&other), None, "{other}");
        }
    }

    #[test]
    fn marketing_is_declared_or_learned() {
        let request = |message: Value, category: Option<&str>| -> SendRequest {
            let mut r = json!({"phone_number_id": "1", "to": "16505551234", "message": message});
            if let Some(c) = category {
                r["category"] = c.into();
            }
            serde_json::from_value(r).unwrap()
        };
        let template = json!({"type": "template", "template": {"name": "promo", "language": {"code": "en"}}});
        assert!(is_marketing(&request(template.clone(), None), Some("marketing")));
        assert!(!is_marketing(&request(template.clone(), None), Some("utility")));
        assert!(!is_marketing(&request(template.clone(), Some("utility")), Some("marketing")));
        assert!(is_marketing(&request(json!({"type": "text", "text": {"body": "x"}}), Some("marketing")), None));
        assert!(!is_marketing(&request(json!({"type": "text", "text": {"body": "x"}}), None), Some("marketing")));
    }
}
