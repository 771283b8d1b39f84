//! SendRequest v1: what producers put on the outbound queue, its validation against Meta's limits,
//! and the exact Graph API request body it becomes.
//!
//! `message` is Meta's message object exactly as Meta documents it (`type` plus the matching field,
//! optional `context`; or a read receipt: `status: "read"`, `message_id`, optional
//! `typing_indicator`). The sender adds `messaging_product`, `recipient_type`, `to` (or `recipient`
//! for a business-scoped user id) and `biz_opaque_callback_data`, and changes nothing else.
//! Lengths are counted in Unicode characters (code points).
//! The JSON Schema is `schemas/send-request.v1.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// Most characters of `callback_data` (`biz_opaque_callback_data`).
pub const MAX_CALLBACK_DATA: usize = 512;
/// Most characters of a text message body.
pub const MAX_TEXT_BODY: usize = 4096;

/// A broken rule, checked before any network call. `rule` is a stable identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{rule}: {detail}")]
pub struct Violation {
    /// Stable identifier of the rule, e.g. `interactive.button.count`.
    pub rule: &'static str,
    /// What was found.
    pub detail: String,
}

fn violation(rule: &'static str, detail: impl Into<String>) -> Violation {
    Violation { rule, detail: detail.into() }
}

/// The pricing category a request declares (used by window and opt-out checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Marketing templates.
    Marketing,
    /// Utility templates.
    Utility,
    /// Authentication templates.
    Authentication,
    /// Service (free-form replies inside the customer-service window).
    Service,
}

/// One send request, as put on the outbound queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The business number sending.
    pub phone_number_id: String,
    /// E.164 digits (with or without `+`) or a business-scoped user id; absent for read receipts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Meta's message object.
    pub message: Map<String, Value>,
    /// Deduplication key; defaults to one derived from the queue message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Correlation data, sent as `biz_opaque_callback_data` and echoed in statuses and outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// A template message to send instead when the free-form one cannot be (closed window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Map<String, Value>>,
    /// The pricing category, when the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// What to do when a send's result is unknown (a timeout or 5xx after Meta may have accepted
    /// it): retry (the default, which may send twice) or end with an `unknown` outcome.
    #[serde(default, skip_serializing_if = "Delivery::is_default")]
    pub delivery: Delivery,
    /// An SMS and/or an e-mail to send when WhatsApp cannot deliver the message (a failed or
    /// refused outcome, or a delivery failure after Meta accepted it): [`crate::fallback`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_channels: Option<crate::fallback::FallbackChannels>,
}

/// A request's delivery guarantee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Never lost: an ambiguous send is retried, so the person may get the message twice.
    #[default]
    AtLeastOnce,
    /// Never twice: an ambiguous send (or a crashed attempt that may have reached Meta) ends with an
    /// `unknown` outcome instead of a retry, for messages a person must not get twice (payment
    /// notices).
    AtMostOnce,
}

impl Delivery {
    fn is_default(&self) -> bool {
        *self == Self::AtLeastOnce
    }
}

/// What kind of Graph call a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// A message of this `type` (text when Meta's default applies).
    Message(String),
    /// A read receipt (optionally with a typing indicator).
    ReadReceipt,
}

/// A recipient identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number (as given, with or without `+`).
    Phone(String),
    /// A business-scoped user id (`CC.xxxx`), sent as `recipient`.
    UserId(String),
}

impl Recipient {
    /// Parses `to`: 7–15 digits with an optional `+` (no leading 0), or a BSUID.
    pub fn parse(to: &str) -> Result<Self, Violation> {
        let digits = to.strip_prefix('+').unwrap_or(to);
        if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
            return Ok(Self::Phone(to.to_owned()));
        }
        let bsuid = to.split_once('.').is_some_and(|(cc, id)| {
            cc.len() == 2
                && cc.bytes().all(|b| b.is_ascii_uppercase())
                && (1..=128).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if bsuid {
            return Ok(Self::UserId(to.to_owned()));
        }
        Err(violation("to.format", "must be E.164 digits (7-15, optional +) or a business-scoped user id (CC.id)"))
    }

    /// The identifier as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(s) | Self::UserId(s) => s,
        }
    }
}

/// Message types Meta documents, each with a content field of the same name.
const KNOWN_TYPES: [&str; 12] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
    "order",
];

const RESERVED: [&str; 5] = ["messaging_product", "recipient_type", "to", "recipient", "biz_opaque_callback_data"];

impl SendRequest {
    /// Parses a queue message body.
    pub fn from_json(body: &str) -> Result<Self, Violation> {
        serde_json::from_str(body).map_err(|e| violation("request.json", e.to_string()))
    }

    /// Checks every documented rule; the first broken one is returned.
    pub fn validate(&self) -> Result<RequestKind, Violation> {
        if self.phone_number_id.is_empty() || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(violation("phone_number_id.format", "must be the numeric Graph id of the business number"));
        }
        if let Some(data) = &self.callback_data {
            let n = data.chars().count();
            if n > MAX_CALLBACK_DATA {
                return Err(violation("callback_data.length", format!("{n} characters, at most {MAX_CALLBACK_DATA}")));
            }
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 512)
        {
            return Err(violation("idempotency_key.length", "must be 1-512 bytes"));
        }
        let kind = validate_message(&self.message, "message")?;
        match (&kind, &self.to) {
            (RequestKind::Message(_), None) => {
                return Err(violation("to.required", "a message needs a recipient"));
            }
            (_, Some(to)) => {
                Recipient::parse(to)?;
            }
            (RequestKind::ReadReceipt, None) => {}
        }
        if let Some(fallback) = &self.fallback {
            match validate_message(fallback, "fallback")? {
                RequestKind::Message(t) if t == "template" => {}
                _ => {
                    return Err(violation("fallback.type", "the fallback must be a template message"));
                }
            }
        }
        if let Some(channels) = &self.fallback_channels {
            channels.validate()?;
        }
        Ok(kind)
    }

    /// The Graph API request body for `message` (or, with `use_fallback`, for the fallback).
    /// Call [`SendRequest::validate`] first.
    pub fn graph_body(&self, use_fallback: bool) -> Result<Value, Violation> {
        let message = if use_fallback {
            self.fallback.as_ref().ok_or_else(|| violation("fallback.missing", "no fallback message"))?
        } else {
            &self.message
        };
        let mut body = Map::with_capacity(message.len() + 4);
        body.insert("messaging_product".into(), "whatsapp".into());
        let read_receipt = message.get("status").and_then(Value::as_str) == Some("read");
        if let Some(to) = &self.to {
            body.insert("recipient_type".into(), "individual".into());
            match Recipient::parse(to)? {
                Recipient::Phone(p) => body.insert("to".into(), p.into()),
                Recipient::UserId(u) => body.insert("recipient".into(), u.into()),
            };
        }
        if let (Some(data), false) = (&self.callback_data, read_receipt) {
            body.insert("biz_opaque_callback_data".into(), data.clone().into());
        }
        for (key, value) in message {
            if RESERVED.contains(&key.as_str()) {
                if key == "messaging_product" && value == "whatsapp" {
                    continue;
                }
                if body.get(key) != Some(value) {
                    return Err(violation(
                        "message.reserved_field",
                        format!("{key} is set by the sender, not in message"),
                    ));
                }
                continue;
            }
            body.insert(key.clone(), value.clone());
        }
        Ok(Value::Object(body))
    }
}

fn chars(value: Option<&Value>) -> usize {
    value.and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

fn max_len(value: Option<&Value>, max: usize, rule: &'static str, what: &str) -> Result<(), Violation> {
    let n = chars(value);
    if n > max { Err(violation(rule, format!("{what} has {n} characters, at most {max}"))) } else { Ok(()) }
}

fn validate_message(message: &Map<String, Value>, at: &'static str) -> Result<RequestKind, Violation> {
    if message.get("status").and_then(Value::as_str) == Some("read") {
        if !message.get("message_id").is_some_and(Value::is_string) {
            return Err(violation("read.message_id", "a read receipt needs message_id"));
        }
        if let Some(indicator) = message.get("typing_indicator")
            && indicator.get("type").and_then(Value::as_str) != Some("text")
        {
            return Err(violation("read.typing_indicator", "typing_indicator.type must be \"text\""));
        }
        return Ok(RequestKind::ReadReceipt);
    }
    // Without `type`, Meta infers it (text by default); its own examples rely on that, so we infer
    // it from the one content field present, and send the message without adding `type`.
    let kind = match message.get("type") {
        None => match KNOWN_TYPES.iter().filter(|t| message.contains_key(**t)).collect::<Vec<_>>()[..] {
            [only] => *only,
            _ => {
                return Err(violation("message.type", format!("{at} has no type and no single content field")));
            }
        },
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(violation("message.type", "type must be a string")),
    };
    if kind == "contacts" {
        if message.get("contacts").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            return Err(violation("contacts.required", "type contacts needs a non-empty contacts array"));
        }
        return Ok(RequestKind::Message(kind.to_owned()));
    }
    let Some(content) = message.get(kind).and_then(Value::as_object) else {
        return Err(violation("message.content", format!("type {kind} needs a {kind} object")));
    };
    if let Some(context) = message.get("context")
        && !context.get("message_id").is_some_and(Value::is_string)
    {
        return Err(violation("context.message_id", "context needs the message_id replied to"));
    }
    match kind {
        "text" => validate_text(content)?,
        "image" | "video" | "audio" | "document" | "sticker" => validate_media(kind, content)?,
        "interactive" => validate_interactive(content)?,
        "template" => validate_template(content)?,
        "reaction" if !content.get("message_id").is_some_and(Value::is_string) => {
            return Err(violation("reaction.message_id", "a reaction needs message_id"));
        }
        "location" if !(content.contains_key("latitude") && content.contains_key("longitude")) => {
            return Err(violation("location.coordinates", "latitude and longitude are required"));
        }
        _ => {}
    }
    Ok(RequestKind::Message(kind.to_owned()))
}

fn validate_text(text: &Map<String, Value>) -> Result<(), Violation> {
    let Some(body) = text.get("body").and_then(Value::as_str) else {
        return Err(violation("text.body.required", "text.body is required"));
    };
    if body.is_empty() {
        return Err(violation("text.body.required", "text.body is empty"));
    }
    max_len(text.get("body"), MAX_TEXT_BODY, "text.body.length", "text.body")
}

fn validate_media(kind: &str, media: &Map<String, Value>) -> Result<(), Violation> {
    if let Some(s3) = media.get("s3") {
        let text = |name: &str| s3.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        if text("bucket").is_none() || text("key").is_none() {
            return Err(violation("media.s3", format!("{kind}.s3 needs a bucket and a key")));
        }
        if media.get("id").is_some() || media.get("link").is_some() {
            return Err(violation("media.source", format!("{kind} takes one of s3, id and link")));
        }
        return max_len(media.get("caption"), 1024, "media.caption.length", "caption");
    }
    if media.get("id").is_none() && media.get("link").is_none() {
        return Err(violation("media.source", format!("{kind} needs an id, a link or an s3 object")));
    }
    max_len(media.get("caption"), 1024, "media.caption.length", "caption")
}

fn validate_interactive(interactive: &Map<String, Value>) -> Result<(), Violation> {
    let kind = interactive.get("type").and_then(Value::as_str).unwrap_or_default();
    if let Some(header) = interactive.get("header") {
        max_len(header.get("text"), 60, "interactive.header.length", "header.text")?;
        if let Some(media_type @ ("image" | "video" | "document")) = header.get("type").and_then(Value::as_str)
            && header.get(media_type).and_then(|m| m.get("id")).is_some()
        {
            return Err(violation("interactive.header.media_link", "interactive headers need a media link, not an id"));
        }
    }
    max_len(interactive.get("body").and_then(|b| b.get("text")), 1024, "interactive.body.length", "body.text")?;
    max_len(interactive.get("footer").and_then(|f| f.get("text")), 60, "interactive.footer.length", "footer.text")?;
    let action = interactive.get("action");
    match kind {
        "button" => {
            let buttons =
                action.and_then(|a| a.get("buttons")).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(violation(
                    "interactive.button.count",
                    format!("{} reply buttons, 1 to 3 allowed", buttons.len()),
                ));
            }
            let mut ids = Vec::new();
            let mut titles = Vec::new();
            for button in buttons {
                let reply = button.get("reply");
                let id = reply.and_then(|r| r.get("id")).and_then(Value::as_str).unwrap_or_default();
                let title = reply.and_then(|r| r.get("title")).and_then(Value::as_str).unwrap_or_default();
                if id.is_empty() || id.chars().count() > 256 || id.trim() != id {
                    return Err(violation(
                        "interactive.button.id",
                        "button ids are 1-256 characters, no surrounding spaces",
                    ));
                }
                if title.is_empty() || title.chars().count() > 20 {
                    return Err(violation(
                        "interactive.button.title",
                        format!("title {title:?} must be 1-20 characters"),
                    ));
                }
                if ids.contains(&id) {
                    return Err(violation("interactive.button.unique_ids", format!("button id {id:?} repeated")));
                }
                if titles.contains(&title) {
                    return Err(violation(
                        "interactive.button.unique_titles",
                        format!("button title {title:?} repeated"),
                    ));
                }
                ids.push(id);
                titles.push(title);
            }
        }
        "list" => {
            max_len(action.and_then(|a| a.get("button")), 20, "interactive.list.button.length", "action.button")?;
            if chars(action.and_then(|a| a.get("button"))) == 0 {
                return Err(violation("interactive.list.button.required", "action.button is required"));
            }
            let sections =
                action.and_then(|a| a.get("sections")).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            if sections.is_empty() || sections.len() > 10 {
                return Err(violation(
                    "interactive.list.sections",
                    format!("{} sections, 1 to 10 allowed", sections.len()),
                ));
            }
            let mut total = 0;
            let mut ids = Vec::new();
            for section in sections {
                max_len(section.get("title"), 24, "interactive.list.section_title.length", "section title")?;
                if sections.len() > 1 && chars(section.get("title")) == 0 {
                    return Err(violation(
                        "interactive.list.section_title.required",
                        "every section needs a title when there are several",
                    ));
                }
                for row in section.get("rows").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
                    total += 1;
                    let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
                    if id.is_empty() || id.chars().count() > 200 {
                        return Err(violation("interactive.list.row.id", "row ids are 1-200 characters"));
                    }
                    if ids.contains(&id) {
                        return Err(violation("interactive.list.row.unique_ids", format!("row id {id:?} repeated")));
                    }
                    ids.push(id);
                    if chars(row.get("title")) == 0 {
                        return Err(violation("interactive.list.row.title", "every row needs a title"));
                    }
                    max_len(row.get("title"), 24, "interactive.list.row.title.length", "row title")?;
                    max_len(row.get("description"), 72, "interactive.list.row.description.length", "row description")?;
                }
            }
            if total == 0 || total > 10 {
                return Err(violation("interactive.list.rows", format!("{total} rows in total, 1 to 10 allowed")));
            }
        }
        "cta_url" => {
            let display = action.and_then(|a| a.get("parameters")).and_then(|p| p.get("display_text"));
            max_len(display, 20, "interactive.cta_url.display_text.length", "display_text")?;
        }
        "" => {
            return Err(violation("interactive.type", "interactive.type is required"));
        }
        _ => {}
    }
    Ok(())
}

fn validate_template(template: &Map<String, Value>) -> Result<(), Violation> {
    if chars(template.get("name")) == 0 {
        return Err(violation("template.name", "template.name is required"));
    }
    if chars(template.get("language").and_then(|l| l.get("code"))) == 0 {
        return Err(violation("template.language", "template.language.code is required"));
    }
    let components = template.get("components").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let buttons = components.iter().filter(|c| c.get("type").and_then(Value::as_str) == Some("button")).count();
    if buttons > 10 {
        return Err(violation("template.buttons.count", format!("{buttons} buttons, at most 10")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(message: Value) -> SendRequest {
        SendRequest {
            phone_number_id: "106540352242922".into(),
            to: Some("+16505551234".into()),
            message: message.as_object().unwrap().clone(),
            idempotency_key: None,
            callback_data: None,
            fallback: None,
            category: None,
            delivery: Delivery::default(),
            fallback_channels: None,
        }
    }

    fn rule(message: Value) -> &'static str {
        request(message).validate().unwrap_err().rule
    }

    #[test]
    fn text_limits() {
        assert!(request(json!({"type":"text","text":{"body":"é".repeat(4096)}})).validate().is_ok());
        assert_eq!(rule(json!({"type":"text","text":{"body":"é".repeat(4097)}})), "text.body.length");
        assert_eq!(rule(json!({"type":"text","text":{}})), "text.body.required");
        assert_eq!(rule(json!({"type":"text"})), "message.content");
        assert_eq!(rule(json!({"text":{"body":""}})), "text.body.required");
        assert_eq!(request(json!({"text":{"body":"hi"}})).validate(), Ok(RequestKind::Message("text".into())));
    }

    fn buttons(titles: &[(&str, &str)]) -> Value {
        let b: Vec<Value> = titles.iter().map(|(id, t)| json!({"type":"reply","reply":{"id":id,"title":t}})).collect();
        json!({"type":"interactive","interactive":{"type":"button","body":{"text":"Pick"},"action":{"buttons":b}}})
    }

    #[test]
    fn reply_buttons() {
        assert!(request(buttons(&[("a", "Yes"), ("b", "No"), ("c", "Maybe 👍")])).validate().is_ok());
        assert_eq!(rule(buttons(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])), "interactive.button.count");
        assert_eq!(rule(buttons(&[("a", "123456789012345678901")])), "interactive.button.title");
        assert_eq!(rule(buttons(&[("a", "x"), ("a", "y")])), "interactive.button.unique_ids");
        assert_eq!(rule(buttons(&[("a", "x"), ("b", "x")])), "interactive.button.unique_titles");
        assert_eq!(rule(buttons(&[(" a", "x")])), "interactive.button.id");
    }

    fn list(sections: &[usize]) -> Value {
        let s: Vec<Value> = sections
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let rows: Vec<Value> = (0..*n).map(|r| json!({"id":format!("{i}-{r}"),"title":"Row"})).collect();
                json!({"title":format!("S{i}"),"rows":rows})
            })
            .collect();
        json!({"type":"interactive","interactive":{"type":"list","body":{"text":"b"},"action":{"button":"Menu","sections":s}}})
    }

    #[test]
    fn list_rows_are_counted_in_total() {
        assert!(request(list(&[5, 5])).validate().is_ok());
        assert_eq!(rule(list(&[6, 5])), "interactive.list.rows");
        assert_eq!(rule(list(&[1; 11])), "interactive.list.sections");
        let mut long = list(&[1]);
        long["interactive"]["action"]["sections"][0]["rows"][0]["description"] = json!("d".repeat(73));
        assert_eq!(rule(long), "interactive.list.row.description.length");
        let mut long = list(&[1]);
        long["interactive"]["header"] = json!({"type":"text","text":"h".repeat(61)});
        assert_eq!(rule(long), "interactive.header.length");
        let mut long = list(&[1]);
        long["interactive"]["footer"] = json!({"text":"f".repeat(61)});
        assert_eq!(rule(long), "interactive.footer.length");
        let mut long = list(&[1]);
        long["interactive"]["body"] = json!({"text":"b".repeat(1025)});
        assert_eq!(rule(long), "interactive.body.length");
    }

    #[test]
    fn recipients_and_callback_data() {
        let ok = ["16505551234", "+16505551234", "US.268412345", "BR.AbC-12_x"];
        for to in ok {
            assert!(Recipient::parse(to).is_ok(), "{to}");
        }
        for to in ["", "123", "+", "0123456789", "1650555123456789", "us.123", "USA.1", "US.", "1650 555 1234"] {
            assert_eq!(Recipient::parse(to).unwrap_err().rule, "to.format", "{to}");
        }
        let mut r = request(json!({"type":"text","text":{"body":"hi"}}));
        r.callback_data = Some("x".repeat(513));
        assert_eq!(r.validate().unwrap_err().rule, "callback_data.length");
        r.callback_data = Some("x".repeat(512));
        r.to = None;
        assert_eq!(r.validate().unwrap_err().rule, "to.required");
    }

    #[test]
    fn graph_body_adds_only_our_fields() {
        let mut r = request(json!({"type":"text","text":{"body":"hi"},"context":{"message_id":"wamid.1"}}));
        r.callback_data = Some("order-7".into());
        let body = r.graph_body(false).unwrap();
        assert_eq!(
            body,
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234",
                   "biz_opaque_callback_data":"order-7","type":"text","text":{"body":"hi"},"context":{"message_id":"wamid.1"}})
        );
        r.to = Some("US.123".into());
        let body = r.graph_body(false).unwrap();
        assert_eq!(body["recipient"], "US.123");
        assert!(body.get("to").is_none());

        let conflicting = request(json!({"type":"text","text":{"body":"hi"},"to":"15550000000"}));
        assert_eq!(conflicting.graph_body(false).unwrap_err().rule, "message.reserved_field");
    }

    #[test]
    fn read_receipts_need_no_recipient() {
        let mut r = request(json!({"status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}}));
        r.to = None;
        assert_eq!(r.validate(), Ok(RequestKind::ReadReceipt));
        assert_eq!(
            r.graph_body(false).unwrap(),
            json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}})
        );
        let mut bad = request(json!({"status":"read"}));
        bad.to = None;
        assert_eq!(bad.validate().unwrap_err().rule, "read.message_id");
    }

    #[test]
    fn fallback_must_be_a_template() {
        let mut r = request(json!({"type":"text","text":{"body":"hi"}}));
        r.fallback = Some(json!({"type":"text","text":{"body":"x"}}).as_object().unwrap().clone());
        assert_eq!(r.validate().unwrap_err().rule, "fallback.type");
        r.fallback = Some(
            json!({"type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(r.validate().is_ok());
        assert_eq!(r.graph_body(true).unwrap()["template"]["name"], "hello_world");
    }

    #[test]
    fn all_50_spec_send_examples_are_accepted_and_sent_unchanged() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meta/send");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut message = example.as_object().unwrap().clone();
            let to = message.remove("to").map(|_| "16505551234".to_owned());
            message.remove("messaging_product");
            message.remove("recipient_type");
            let request = SendRequest {
                phone_number_id: "106540352242922".into(),
                to: to.clone(),
                message,
                idempotency_key: None,
                callback_data: None,
                fallback: None,
                category: None,
                delivery: Delivery::default(),
                fallback_channels: None,
            };
            request.validate().unwrap_or_else(|v| panic!("{}: {v}", path.display()));
            let mut expected = example.clone();
            if to.is_some() {
                expected["to"] = json!("16505551234");
                expected["recipient_type"] = json!("individual");
            }
            assert_eq!(request.graph_body(false).unwrap(), expected, "{}", path.display());
            count += 1;
        }
        assert_eq!(count, 50);
    }
}
