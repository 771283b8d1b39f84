//! Fan-out: how an event on its way to consumers becomes an Amazon EventBridge entry on the
//! pipeline's bus, with the fields a consumer's rule filters on lifted out of it.
//!
//! Every event the pipeline publishes for consumers (inbound events, `send_result`,
//! `delivery_failure`, `fallback_*`) has one shape on the bus: `source` is [`SOURCE`],
//! `detail-type` is the event's `kind`, and `detail` is
//!
//! ```json
//! {"kind": "status", "phone_number_id": "1065…", "status": "failed", "category": "marketing",
//!  "message_type": null, "campaign": "spring", "variant": "a", "event": { …the event… }}
//! ```
//!
//! The filter fields are the same for every kind (absent when the event has none), so a rule reads
//! `{"detail-type": ["status"], "detail": {"status": ["failed"]}}` whatever the payload's shape.
//! `event` is the event exactly as the events queue carries it (a claim-checked event as its
//! reference, whose filter fields are those the reference keeps). The events queue is one target
//! of the bus: its rule's input transformer passes `$.detail.event`, so its consumers see what they
//! always saw.

use serde_json::Value;

/// The `source` of every entry the pipeline puts on its bus.
pub const SOURCE: &str = "whatsapp.pipeline";
/// The `detail-type` of an event without a readable `kind`.
pub const UNKNOWN_KIND: &str = "unknown";
/// Longest filter field kept (a longer value is dropped, never cut: a rule must not match a prefix).
pub const MAX_FIELD: usize = 256;

/// An event as an EventBridge entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `detail-type`: the event's kind.
    pub detail_type: String,
    /// `detail`: the filter fields and the event.
    pub detail: String,
}

impl Entry {
    /// The entry's size as EventBridge counts it against its 256 KB limit (source, detail type and
    /// detail, in UTF-8 bytes).
    #[must_use]
    pub fn size(&self) -> usize {
        SOURCE.len() + self.detail_type.len() + self.detail.len()
    }
}

/// The fields a rule filters on, lifted out of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// `kind`: `message`, `status`, `error`, `template`, `account`, `other`, `send_result`,
    /// `delivery_failure`, `fallback_sent`, `fallback_failed`, `fallback_skipped`.
    pub kind: Option<String>,
    /// The business number.
    pub phone_number_id: Option<String>,
    /// A status's `status` (`sent`, `delivered`, `read`, `failed`), an outcome's (`accepted`,
    /// `failed`, `window_closed`, `opted_out`, `unknown`); `failed` for a delivery failure.
    pub status: Option<String>,
    /// A status's pricing category (`marketing`, `utility`, `authentication`, `service`, …).
    pub category: Option<String>,
    /// An inbound message's `type` (`text`, `image`, `interactive`, …).
    pub message_type: Option<String>,
    /// The campaign a send belongs to: `campaign` of a callback data that is a JSON object.
    pub campaign: Option<String>,
    /// The campaign's variant: `variant` of the same object.
    pub variant: Option<String>,
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= MAX_FIELD).map(str::to_owned)
}

/// The filter fields of an event (a JSON object; anything else has none).
#[must_use]
pub fn fields(event: &Value) -> Fields {
    let kind = text(event.get("kind"));
    let payload = event.get("payload");
    let at = |pointer: &str| payload.and_then(|p| p.pointer(pointer));
    let (status, category, message_type, callback) = match kind.as_deref() {
        Some("status") => (
            text(at("/status")),
            text(at("/pricing/category")).or_else(|| text(at("/conversation/origin/type"))),
            None,
            at("/biz_opaque_callback_data").and_then(Value::as_str),
        ),
        Some("message") => (None, None, text(at("/type")), None),
        Some("delivery_failure") => {
            (Some("failed".to_owned()), None, None, event.get("callback_data").and_then(Value::as_str))
        }
        Some(_) => (text(event.get("status")), None, None, event.get("callback_data").and_then(Value::as_str)),
        None => (None, None, None, None),
    };
    // Callback data is at most 512 characters (Meta's limit); only an object's fields are kept.
    let tags: Option<Value> =
        callback.filter(|c| c.starts_with('{') && c.len() <= 2048).and_then(|c| serde_json::from_str(c).ok());
    let tag = |name: &str| text(tags.as_ref().and_then(|t| t.get(name)));
    Fields {
        phone_number_id: text(event.get("phone_number_id")),
        status,
        category: category.map(|c| c.to_ascii_lowercase()),
        message_type,
        campaign: tag("campaign"),
        variant: tag("variant"),
        kind,
    }
}

/// The EventBridge entry of one event body (JSON, as the events queue would carry it). A body
/// that is not a JSON object still travels, as a string under `event`, with kind `unknown`.
#[must_use]
pub fn entry(body: &str) -> Entry {
    let parsed: Option<Value> = serde_json::from_str(body).ok().filter(Value::is_object);
    let fields = parsed.as_ref().map(fields).unwrap_or_default();
    let mut detail = String::with_capacity(body.len() + 192);
    detail.push('{');
    let pairs = [
        ("kind", &fields.kind),
        ("phone_number_id", &fields.phone_number_id),
        ("status", &fields.status),
        ("category", &fields.category),
        ("message_type", &fields.message_type),
        ("campaign", &fields.campaign),
        ("variant", &fields.variant),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            detail.push('"');
            detail.push_str(name);
            detail.push_str("\":");
            detail.push_str(&Value::from(value.as_str()).to_string());
            detail.push(',');
        }
    }
    detail.push_str("\"event\":");
    if parsed.is_some() {
        // The body is already JSON: inserted as it is, byte for byte.
        detail.push_str(body.trim());
    } else {
        detail.push_str(&Value::from(body).to_string());
    }
    detail.push('}');
    Entry { detail_type: fields.kind.unwrap_or_else(|| UNKNOWN_KIND.to_owned()), detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(event: Value) -> Fields {
        fields(&event)
    }

    #[test]
    fn every_kind_lifts_the_same_fields() {
        let status = json!({"kind": "status", "phone_number_id": "1065", "payload": {
            "status": "delivered", "pricing": {"category": "MARKETING", "billable": true},
            "biz_opaque_callback_data": "{\"campaign\":\"spring\",\"variant\":\"b\"}"}});
        let old_status = json!({"kind": "status", "phone_number_id": "1065", "payload": {
            "status": "sent", "conversation": {"origin": {"type": "utility"}}}});
        let message = json!({"kind": "message", "phone_number_id": "1065", "payload": {"type": "image"}});
        let outcome = json!({"kind": "send_result", "phone_number_id": "1065", "status": "window_closed",
            "callback_data": "order-7"});
        let failure = json!({"kind": "delivery_failure", "phone_number_id": "1065",
            "callback_data": "{\"campaign\":\"c1\"}"});
        let claim_checked = json!({"kind": "status", "phone_number_id": "1065", "payload_ref": {"key": "k"}});
        let table: [(Value, Fields); 7] = [
            (
                status,
                Fields {
                    kind: Some("status".into()),
                    phone_number_id: Some("1065".into()),
                    status: Some("delivered".into()),
                    category: Some("marketing".into()),
                    campaign: Some("spring".into()),
                    variant: Some("b".into()),
                    ..Fields::default()
                },
            ),
            (
                old_status,
                Fields {
                    kind: Some("status".into()),
                    phone_number_id: Some("1065".into()),
                    status: Some("sent".into()),
                    category: Some("utility".into()),
                    ..Fields::default()
                },
            ),
            (
                message,
                Fields {
                    kind: Some("message".into()),
                    phone_number_id: Some("1065".into()),
                    message_type: Some("image".into()),
                    ..Fields::default()
                },
            ),
            (
                outcome,
                Fields {
                    kind: Some("send_result".into()),
                    phone_number_id: Some("1065".into()),
                    status: Some("window_closed".into()),
                    ..Fields::default()
                },
            ),
            (
                failure,
                Fields {
                    kind: Some("delivery_failure".into()),
                    phone_number_id: Some("1065".into()),
                    status: Some("failed".into()),
                    campaign: Some("c1".into()),
                    ..Fields::default()
                },
            ),
            (
                claim_checked,
                Fields { kind: Some("status".into()), phone_number_id: Some("1065".into()), ..Fields::default() },
            ),
            (json!({"kind": 7, "phone_number_id": ["x"], "status": {"a": 1}}), Fields::default()),
        ];
        for (event, expected) in table {
            assert_eq!(f(event.clone()), expected, "{event}");
        }
    }

    #[test]
    fn an_overlong_field_is_dropped_not_cut() {
        let long = "9".repeat(MAX_FIELD + 1);
        assert_eq!(f(json!({"kind": "message", "phone_number_id": long})).phone_number_id, None);
    }

    #[test]
    fn the_entry_carries_the_event_verbatim() {
        let body =
            r#"{"kind":"message","phone_number_id":"1065","payload":{"type":"text","text":{"body":"h\u00e9 \"x\""}}}"#;
        let entry = entry(body);
        assert_eq!(entry.detail_type, "message");
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(detail["kind"], "message");
        assert_eq!(detail["message_type"], "text");
        assert!(detail.get("status").is_none(), "absent fields are left out");
        assert_eq!(detail["event"], serde_json::from_str::<Value>(body).unwrap());
        assert!(entry.detail.ends_with(&format!("\"event\":{body}}}")), "byte for byte");
        assert_eq!(entry.size(), SOURCE.len() + "message".len() + entry.detail.len());
    }

    #[test]
    fn a_body_that_is_not_an_object_still_travels() {
        for body in ["not json", "[1,2]", "\"text\"", ""] {
            let entry = entry(body);
            assert_eq!(entry.detail_type, UNKNOWN_KIND);
            let detail: Value = serde_json::from_str(&entry.detail).unwrap();
            assert_eq!(detail["event"], Value::from(body), "{body}");
        }
    }
}
