//! Inbound event v1: one event per message, status, error and other change of a webhook POST.
//!
//! [`split_webhook`] walks every entry × change × item of a verified body and produces one
//! [`InboundEvent`] per item, borrowing each item's exact JSON text from the body, so `payload` is the
//! original Meta object byte for byte. The JSON Schema of the event is `schemas/inbound-event.v1.json`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::webhook::FlexString;

/// The version written in every event.
pub const EVENT_VERSION: u32 = 1;

/// The `object` of WhatsApp Business Account webhooks.
pub const WABA_OBJECT: &str = "whatsapp_business_account";

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An inbound message (`value.messages[]`).
    Message,
    /// A status of a message we sent (`value.statuses[]`).
    Status,
    /// An error not tied to one message (`value.errors[]`).
    Error,
    /// A template status, category, quality or components change.
    Template,
    /// An account, quality, limit or capability change.
    Account,
    /// Anything else: groups, calls, user preferences, echoes, fields Meta adds later.
    Other,
}

impl EventKind {
    /// The wire form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Status => "status",
            Self::Error => "error",
            Self::Template => "template",
            Self::Account => "account",
            Self::Other => "other",
        }
    }

    /// The kind of a change that is not split into items, from its field name.
    #[must_use]
    pub fn of_field(field: &str) -> Self {
        if field.starts_with("message_template_") || field.starts_with("template_") {
            Self::Template
        } else if matches!(
            field,
            "account_update"
                | "account_alerts"
                | "account_review_update"
                | "account_settings_update"
                | "business_capability_update"
                | "business_status_update"
                | "phone_number_quality_update"
                | "phone_number_name_update"
                | "security"
        ) {
            Self::Account
        } else {
            Self::Other
        }
    }
}

/// Where the payload of an event too large for one queue message was stored (claim-check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    /// The bucket.
    pub bucket: String,
    /// The object key; the object holds the whole event, payload included.
    pub key: String,
    /// Size of the stored event in bytes.
    pub size: u64,
    /// Hex SHA-256 of the stored event.
    pub sha256: String,
}

/// Key prefix of claim-checked events in the payload bucket.
pub const CLAIM_CHECK_PREFIX: &str = "claim-check/";

/// Stores `event_json` (the whole of `event`, as it would have been queued, too large for a queue
/// message) in `blobs` at [`claim_check_ref`], and returns the queue message that refers to it in
/// its place; [`resolve_event`] reads it back.
pub async fn claim_check<B: crate::ports::BlobStore>(
    blobs: &B,
    event: &InboundEvent<'_>,
    event_json: String,
) -> Result<String, ClaimCheckError> {
    let reference = claim_check_ref(blobs.bucket(), &event_json);
    blobs.put(&reference.key, event_json.into_bytes(), "application/json").await.map_err(ClaimCheckError::Store)?;
    event.to_claim_check(reference).to_json().map_err(|e| ClaimCheckError::Reference(e.to_string()))
}

/// Why an event could not be claim-checked.
#[derive(Debug, Error)]
pub enum ClaimCheckError {
    /// The object could not be stored.
    #[error("cannot store the claim-checked event: {0}")]
    Store(crate::ports::BlobError),
    /// The reference could not be serialized.
    #[error("cannot serialize the claim-check reference: {0}")]
    Reference(String),
}

/// Where `event_json`, an event too large for a queue message, is stored whole in `bucket`: under
/// [`CLAIM_CHECK_PREFIX`] and its SHA-256, so the same event always lands on the same key.
#[must_use]
pub fn claim_check_ref(bucket: &str, event_json: &str) -> PayloadRef {
    let sha256 = hex::encode(Sha256::digest(event_json.as_bytes()));
    PayloadRef {
        bucket: bucket.to_owned(),
        key: format!("{CLAIM_CHECK_PREFIX}{sha256}.json"),
        size: event_json.len() as u64,
        sha256,
    }
}

/// One inbound event, as put on the inbound queue (one JSON object per SQS message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundEvent<'a> {
    /// Always [`EVENT_VERSION`].
    pub version: u32,
    /// Stable across Meta's redeliveries: the wamid for a message, `wamid:status` for a status,
    /// `sha256:<hex>` of the canonical content otherwise.
    pub event_id: String,
    /// What the event is about.
    pub kind: EventKind,
    /// The webhook field of the change.
    pub field: String,
    /// `entry.id`: the WhatsApp Business Account.
    pub waba_id: String,
    /// `value.metadata.phone_number_id`, when the change has one.
    pub phone_number_id: Option<String>,
    /// `value.metadata.display_phone_number` with it (quality webhooks name a number by it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// The user: BSUID when present, else the wa_id.
    pub user_id: Option<String>,
    /// The matching `value.contacts[]` object (profile and ids), for messages and statuses.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<&'a RawValue>,
    /// The item's Unix time in seconds (or the entry's), when known.
    pub timestamp: Option<i64>,
    /// When ingest accepted the webhook, Unix milliseconds.
    pub received_at: u64,
    /// The original Meta object, unchanged. Absent only when `payload_ref` is set.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a RawValue>,
    /// Set instead of `payload` when the event was too large for one queue message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<PayloadRef>,
}

impl InboundEvent<'_> {
    /// The event as JSON, the text of one queue message: the same as `serde_json::to_string`,
    /// written into a buffer sized for it up front (growing one for every event of a webhook was
    /// a third of the cost of serializing it).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let raw = |value: Option<&RawValue>| value.map_or(0, |v| v.get().len());
        let text = |value: &Option<String>| value.as_ref().map_or(0, String::len);
        let capacity = 224
            + self.event_id.len()
            + self.field.len()
            + self.waba_id.len()
            + text(&self.phone_number_id)
            + text(&self.display_phone_number)
            + text(&self.user_id)
            + raw(self.contact)
            + raw(self.payload);
        let mut json = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut json, self)?;
        String::from_utf8(json).map_err(serde::ser::Error::custom)
    }

    /// The payload as a typed value (for example [`crate::webhook::Message`]).
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PayloadError> {
        let raw = self.payload.ok_or(PayloadError::PayloadNotInline)?;
        serde_json::from_str(raw.get()).map_err(|e| PayloadError::NotJson(e.to_string()))
    }

    /// The claim-check form of this event: everything but `contact` and `payload`, plus the ref.
    #[must_use]
    pub fn to_claim_check(&self, payload_ref: PayloadRef) -> InboundEvent<'static> {
        InboundEvent {
            version: self.version,
            event_id: self.event_id.clone(),
            kind: self.kind,
            field: self.field.clone(),
            waba_id: self.waba_id.clone(),
            phone_number_id: self.phone_number_id.clone(),
            display_phone_number: self.display_phone_number.clone(),
            user_id: self.user_id.clone(),
            contact: None,
            timestamp: self.timestamp,
            received_at: self.received_at,
            payload: None,
            payload_ref: Some(payload_ref),
        }
    }
}

/// Why a verified body could not be split into events. The body is then parked, not retried.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// Not JSON, or not the webhook envelope shape.
    #[error("body is not a webhook envelope: {0}")]
    NotJson(String),
    /// `object` is not `whatsapp_business_account`.
    #[error("unexpected object {0:?}")]
    UnexpectedObject(String),
    /// An item of `messages`, `statuses` or `errors` is not a JSON object.
    #[error("an item of {0} is not a JSON object")]
    ItemNotObject(&'static str),
    /// The envelope holds no change at all.
    #[error("webhook holds no change")]
    Empty,
    /// The event's payload is stored elsewhere (claim-check).
    #[error("payload is not inline; resolve the payload_ref first")]
    PayloadNotInline,
}

/// The envelope, each change's value read as `V`: raw JSON, or at once as a [`ValueView`].
#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct EnvelopeView<V> {
    object: String,
    entry: Vec<EntryView<V>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct EntryView<V> {
    id: FlexString,
    #[serde(default)]
    time: Option<FlexString>,
    #[serde(default)]
    changes: Vec<ChangeView<V>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct ChangeView<V> {
    field: String,
    value: V,
}

/// The few keys of an item that event fields are derived from.
#[derive(Deserialize, Default)]
struct ItemKeys {
    #[serde(default)]
    id: Option<FlexString>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    from: Option<FlexString>,
    #[serde(default)]
    from_user_id: Option<String>,
    #[serde(default)]
    recipient_id: Option<FlexString>,
    #[serde(default)]
    recipient_user_id: Option<String>,
    #[serde(default)]
    timestamp: Option<FlexString>,
}

#[derive(Deserialize, Default)]
struct ContactKeys {
    #[serde(default)]
    wa_id: Option<FlexString>,
    #[serde(default)]
    user_id: Option<String>,
}

/// `value.metadata`: only the business number is read.
#[derive(Deserialize)]
struct MetadataKeys {
    #[serde(default)]
    phone_number_id: Option<FlexString>,
    #[serde(default)]
    display_phone_number: Option<FlexString>,
}

/// The item arrays of a `messages` change value, each item one event.
const ITEM_ARRAYS: [(&str, EventKind); 3] =
    [("messages", EventKind::Message), ("statuses", EventKind::Status), ("errors", EventKind::Error)];

/// The visitor methods of a view that takes any string, number, boolean or null as its default.
macro_rules! scalars_are_default {
    () => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }

        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }

        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }

        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }

        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
    };
}

/// A change's `value` read in one pass without copying: the members events are derived
/// from, as raw JSON (the arrays as their elements), and whether it has any other (then the whole
/// value is an event too). As with any JSON map read, a repeated key counts once, with its last
/// value.
#[derive(Default)]
struct ValueView<'a> {
    /// The value is an object (anything else is only ever kept whole).
    object: bool,
    metadata: Option<&'a RawValue>,
    contacts: Option<RawArray<'a>>,
    /// `messages`, `statuses`, `errors`, in the order of [`ITEM_ARRAYS`].
    items: [Option<RawArray<'a>>; 3],
    /// A key other than these and `messaging_product`.
    unrepresented: bool,
}

impl<'de> Deserialize<'de> for ValueView<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ValueView<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a change value object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<ValueView<'de>, M::Error> {
                let mut view = ValueView { object: true, ..ValueView::default() };
                while let Some(Key(key)) = map.next_key()? {
                    match key.as_ref() {
                        "metadata" => view.metadata = Some(map.next_value()?),
                        "contacts" => view.contacts = Some(map.next_value()?),
                        "messages" => view.items[0] = Some(map.next_value()?),
                        "statuses" => view.items[1] = Some(map.next_value()?),
                        "errors" => view.items[2] = Some(map.next_value()?),
                        other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            view.unrepresented |= other != "messaging_product";
                        }
                    }
                }
                Ok(view)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ValueView<'de>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(ValueView::default())
            }

            scalars_are_default!();
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A member that should be an array, as its elements' raw JSON; `None` when it is something else
/// (which the caller judges: an error for items, nothing for contacts).
#[derive(Default)]
struct RawArray<'a>(Option<Vec<&'a RawValue>>);

impl<'de> Deserialize<'de> for RawArray<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawArray<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawArray<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(RawArray(Some(items)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawArray<'de>, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(RawArray(None))
            }

            scalars_are_default!();
        }
        deserializer.deserialize_any(Visit)
    }
}

/// An object key, borrowed from the body unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// Splits a verified webhook body into events, over all entries × changes × items.
///
/// Messages, statuses and errors become one event each; any other change becomes one event whose
/// payload is the change's whole `value`. A `messages`-style change that also carries keys we do not
/// represent (or no item at all) additionally yields one event with the whole value, so nothing in
/// the body is ever dropped.
pub fn split_webhook(body: &[u8], received_at: u64) -> Result<Vec<InboundEvent<'_>>, PayloadError> {
    // One reading of the body is enough unless a change must also be kept whole; then (and for
    // any error, so that it is reported as below) a second reading keeps each value's raw text.
    if let Some(events) = split_in_one_pass(body, received_at) {
        return Ok(events);
    }
    let envelope: EnvelopeView<&RawValue> =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    if envelope.object != WABA_OBJECT {
        return Err(PayloadError::UnexpectedObject(envelope.object));
    }
    let mut events = Vec::new();
    for entry in &envelope.entry {
        let entry_time = entry.time.as_ref().and_then(FlexString::as_unix_seconds);
        for change in &entry.changes {
            let view = serde_json::from_str::<ValueView<'_>>(change.value.get()).unwrap_or_default();
            let whole = Some(change.value);
            split_change(&entry.id.0, entry_time, &change.field, view, whole, received_at, &mut events)?;
        }
    }
    if events.is_empty() {
        return Err(PayloadError::Empty);
    }
    Ok(events)
}

/// The events of a body none of whose changes is kept whole, read in one pass; `None` otherwise.
fn split_in_one_pass(body: &[u8], received_at: u64) -> Option<Vec<InboundEvent<'_>>> {
    let envelope: EnvelopeView<ValueView<'_>> = serde_json::from_slice(body).ok()?;
    if envelope.object != WABA_OBJECT {
        return None;
    }
    let mut events = Vec::new();
    for EntryView { id, time, changes } in envelope.entry {
        let entry_time = time.as_ref().and_then(FlexString::as_unix_seconds);
        for change in changes {
            match split_change(&id.0, entry_time, &change.field, change.value, None, received_at, &mut events) {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
    }
    (!events.is_empty()).then_some(events)
}

/// Splits one change into `events`. `whole` is the value's raw JSON when the caller has it: a value
/// that is not an object, has keys events do not represent, or no item, is an event itself too.
/// Without `whole` such a change adds nothing and `Ok(false)` says so.
fn split_change<'a>(
    waba_id: &str,
    entry_time: Option<i64>,
    field: &str,
    view: ValueView<'a>,
    whole: Option<&'a RawValue>,
    received_at: u64,
    events: &mut Vec<InboundEvent<'a>>,
) -> Result<bool, PayloadError> {
    let base = |kind, event_id, payload| InboundEvent {
        version: EVENT_VERSION,
        event_id,
        kind,
        field: field.to_owned(),
        waba_id: waba_id.to_owned(),
        phone_number_id: None,
        display_phone_number: None,
        user_id: None,
        contact: None,
        timestamp: entry_time,
        received_at,
        payload: Some(payload),
        payload_ref: None,
    };
    let has_items = view.items.iter().flatten().any(|array| array.0.as_ref().is_none_or(|items| !items.is_empty()));
    let kept_whole = !view.object || view.unrepresented || !has_items;
    let whole = match (kept_whole, whole) {
        (false, _) => None,
        (true, Some(whole)) => Some(whole),
        (true, None) => return Ok(false),
    };
    // A value that is not an object (never seen from Meta) is still kept, whole.
    if !view.object {
        if let Some(value) = whole {
            events.push(base(EventKind::of_field(field), content_id(field, waba_id, value), value));
        }
        return Ok(true);
    }
    let metadata = view.metadata.and_then(|m| serde_json::from_str::<MetadataKeys>(m.get()).ok());
    let (phone_number_id, display_phone_number) = match metadata {
        Some(MetadataKeys { phone_number_id, display_phone_number }) => {
            (phone_number_id.map(|id| id.0), display_phone_number.map(|d| d.0))
        }
        None => (None, None),
    };
    let contacts: Vec<(ContactKeys, &'a RawValue)> = view
        .contacts
        .and_then(|c| c.0)
        .unwrap_or_default()
        .into_iter()
        .map(|raw| (serde_json::from_str(raw.get()).unwrap_or_default(), raw))
        .collect();

    for ((key, kind), array) in ITEM_ARRAYS.into_iter().zip(view.items) {
        let Some(array) = array else { continue };
        let items = array.0.ok_or(PayloadError::ItemNotObject(key))?;
        for item in items {
            if !item.get().starts_with('{') {
                return Err(PayloadError::ItemNotObject(key));
            }
            let keys: ItemKeys = serde_json::from_str(item.get()).unwrap_or_default();
            let mut event = base(kind, String::new(), item);
            event.phone_number_id.clone_from(&phone_number_id);
            event.display_phone_number.clone_from(&display_phone_number);
            event.timestamp = keys.timestamp.as_ref().and_then(FlexString::as_unix_seconds).or(entry_time);
            event.contact = match kind {
                EventKind::Message => matching_contact(&contacts, keys.from_user_id.as_deref(), keys.from.as_ref()),
                EventKind::Status => {
                    matching_contact(&contacts, keys.recipient_user_id.as_deref(), keys.recipient_id.as_ref())
                }
                _ => None,
            };
            // The keys' strings move into the event: no copies.
            let ItemKeys { id, status, from, from_user_id, recipient_id, recipient_user_id, .. } = keys;
            event.user_id = match kind {
                EventKind::Message => from_user_id.or(from.map(|f| f.0)),
                EventKind::Status => recipient_user_id.or(recipient_id.map(|r| r.0)),
                _ => None,
            };
            event.event_id = match (kind, id, status) {
                (EventKind::Message, Some(id), _) => id.0,
                (EventKind::Status, Some(id), Some(status)) => format!("{}:{status}", id.0),
                _ => content_id(field, waba_id, item),
            };
            events.push(event);
        }
    }
    if let Some(value) = whole {
        let mut event = base(EventKind::of_field(field), content_id(field, waba_id, value), value);
        event.phone_number_id = phone_number_id;
        event.display_phone_number = display_phone_number;
        events.push(event);
    }
    Ok(true)
}

/// The `contacts[]` entry of an item's person, by BSUID or by phone (messages: `from_user_id` /
/// `from`; statuses, which carry contacts since 2026: `recipient_user_id` / `recipient_id`).
fn matching_contact<'a>(
    contacts: &[(ContactKeys, &'a RawValue)],
    user_id: Option<&str>,
    wa_id: Option<&FlexString>,
) -> Option<&'a RawValue> {
    contacts
        .iter()
        .find(|(c, _)| {
            (user_id.is_some() && c.user_id.as_deref() == user_id) || (wa_id.is_some() && c.wa_id.as_ref() == wa_id)
        })
        .map(|(_, raw)| *raw)
}

/// `sha256:<hex>` over the field, the WABA id and the canonical form of the payload (keys sorted,
/// no whitespace), so the id survives re-formatting and re-ordering in a redelivery.
#[must_use]
pub fn content_id(field: &str, waba_id: &str, payload: &RawValue) -> String {
    let mut hasher = Sha256::new();
    hasher.update(field.as_bytes());
    hasher.update([0]);
    hasher.update(waba_id.as_bytes());
    hasher.update([0]);
    match serde_json::from_str::<serde_json::Value>(payload.get()) {
        Ok(value) => canonical_json(&value, &mut hasher),
        Err(_) => hasher.update(payload.get().as_bytes()),
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn canonical_json(value: &serde_json::Value, hasher: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                if let Some(v) = map.get(key) {
                    canonical_json(v, hasher);
                }
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                canonical_json(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

/// Reads an inbound queue message back into the full event JSON, fetching a claim-checked event
/// from the store when the message carries a `payload_ref`, and checking its digest.
pub async fn resolve_event<B: crate::ports::BlobStore>(blobs: &B, message_body: &str) -> Result<String, ResolveError> {
    let event: InboundEvent<'_> =
        serde_json::from_str(message_body).map_err(|e| ResolveError::NotAnEvent(e.to_string()))?;
    let Some(reference) = event.payload_ref else {
        return Ok(message_body.to_owned());
    };
    let bytes = blobs.get(&reference.key).await.map_err(|e| ResolveError::Store(e.to_string()))?;
    if hex::encode(Sha256::digest(&bytes)) != reference.sha256 {
        return Err(ResolveError::Corrupt(reference.key));
    }
    String::from_utf8(bytes).map_err(|_| ResolveError::Corrupt(reference.key))
}

/// Why a queued event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    /// The message is not an inbound event.
    #[error("not an inbound event: {0}")]
    NotAnEvent(String),
    /// The claim-checked object could not be read.
    #[error("claim-checked event unavailable: {0}")]
    Store(String),
    /// The claim-checked object does not match its reference.
    #[error("claim-checked event {0} does not match its digest")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Message, MessageType};
    use serde_json::json;

    fn split(body: &serde_json::Value) -> Vec<serde_json::Value> {
        let text = body.to_string();
        split_webhook(text.as_bytes(), 7).unwrap().iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }

    fn messages_change(value: serde_json::Value) -> serde_json::Value {
        json!({"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":value}]}]})
    }

    #[test]
    fn every_entry_change_and_item_becomes_an_event() {
        let body = json!({"object":"whatsapp_business_account","entry":[
            {"id":"W1","changes":[
                {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"P1"},
                    "contacts":[{"profile":{"name":"A"},"wa_id":"111"},{"profile":{"name":"B"},"wa_id":"222","user_id":"US.2"}],
                    "messages":[{"from":"111","id":"wamid.1","timestamp":"100","type":"text","text":{"body":"hi"}},
                                {"from":"222","from_user_id":"US.2","id":"wamid.2","timestamp":"101","type":"image","image":{"id":"m"}}],
                    "statuses":[{"id":"wamid.9","status":"read","timestamp":"102","recipient_id":"333"}]}},
                {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":1}}]},
            {"id":"W2","time":1700000000,"changes":[
                {"field":"messages","value":{"metadata":{"phone_number_id":"P2"},
                    "errors":[{"code":131000,"title":"Something went wrong"}]}},
                {"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}},
                {"field":"brand_new_field","value":{"anything":[1,2,3]}}]}]});
        let events = split(&body);
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message", "message", "status", "template", "error", "account", "other"]);
        assert_eq!(events[0]["event_id"], "wamid.1");
        assert_eq!(events[0]["user_id"], "111");
        assert_eq!(events[0]["contact"]["profile"]["name"], "A");
        assert_eq!(events[0]["phone_number_id"], "P1");
        assert_eq!(events[0]["timestamp"], 100);
        assert_eq!(events[1]["user_id"], "US.2");
        assert_eq!(events[1]["contact"]["profile"]["name"], "B");
        assert_eq!(events[2]["event_id"], "wamid.9:read");
        assert_eq!(events[2]["user_id"], "333");
        assert!(events[2].get("contact").is_none());
        assert_eq!(events[3]["waba_id"], "W1");
        assert!(events[3]["event_id"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(events[4]["waba_id"], "W2");
        assert_eq!(events[4]["phone_number_id"], "P2");
        assert_eq!(events[4]["timestamp"], 1_700_000_000);
        assert_eq!(events[6]["field"], "brand_new_field");
        assert_eq!(events[6]["payload"], json!({"anything":[1,2,3]}));
        assert!(events.iter().all(|e| e["version"] == 1 && e["received_at"] == 7));
    }

    #[test]
    fn payload_is_the_exact_original_text() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":[ {"id" : "wamid.1","type":"text","text":{"body":"\u00e4 a\/b \ud83d\ude00"}} ]}}]}]}"#;
        let events = split_webhook(body, 0).unwrap();
        let raw = events[0].payload.unwrap().get();
        assert_eq!(raw, r#"{"id" : "wamid.1","type":"text","text":{"body":"\u00e4 a\/b \ud83d\ude00"}}"#);
        let line = serde_json::to_string(&events[0]).unwrap();
        assert_eq!(events[0].to_json().unwrap(), line, "to_json writes what serde_json writes");
        assert!(line.contains(raw));
        let message: Message = events[0].payload_as().unwrap();
        assert_eq!(message.kind, MessageType::Text);
        assert_eq!(message.text.unwrap().body, "ä a/b 😀");
    }

    #[test]
    fn unrepresented_keys_and_empty_changes_are_kept_whole() {
        let events = split(&messages_change(json!({"metadata":{"phone_number_id":"P"},"groups":[{"group_id":"G"}]})));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["kind"], "other");
        assert_eq!(events[0]["payload"]["groups"][0]["group_id"], "G");

        let events = split(&messages_change(json!({"messages":[{"id":"wamid.1","type":"text"}],"novel":true})));
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["payload"]["novel"], true);
    }

    #[test]
    fn only_changes_kept_whole_need_a_second_reading() {
        let one_pass = |value: serde_json::Value| {
            split_in_one_pass(messages_change(value).to_string().as_bytes(), 0).map(|events| events.len())
        };
        let message = json!([{"from":"1","id":"wamid.1","type":"text","text":{"body":"hi"}}]);
        let events =
            one_pass(json!({"messaging_product":"whatsapp","metadata":{"phone_number_id":"P"},"messages":message}));
        assert_eq!(events, Some(1), "messages: one pass");
        assert!(one_pass(json!({"statuses":[{"id":"wamid.1","status":"read"}]})).is_some());
        assert!(one_pass(json!({"messages":message,"novel":true})).is_none(), "an unrepresented key");
        assert!(one_pass(json!({"metadata":{"phone_number_id":"P"}})).is_none(), "no item");
        assert!(one_pass(json!({"messages":[]})).is_none(), "no item");
        assert!(one_pass(json!(5)).is_none(), "not an object");
        assert!(one_pass(json!({"messages":[1]})).is_none(), "an error is reported by the second reading");
    }

    #[test]
    fn content_ids_are_stable_across_formatting_and_key_order() {
        let a = RawValue::from_string(r#"{"a":1,"b":{"c":[1,"x"]}}"#.into()).unwrap();
        let b = RawValue::from_string("{ \"b\" : {\"c\":[1, \"x\"]}, \"a\":1 }".into()).unwrap();
        let c = RawValue::from_string(r#"{"a":2,"b":{"c":[1,"x"]}}"#.into()).unwrap();
        assert_eq!(content_id("f", "w", &a), content_id("f", "w", &b));
        assert_ne!(content_id("f", "w", &a), content_id("f", "w", &c));
        assert_ne!(content_id("f", "w", &a), content_id("g", "w", &a));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"object":"page","entry":[]}"#,
            br#"{"object":"whatsapp_business_account","entry":[]}"#,
            br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[]}]}"#,
            br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":[1]}}]}]}"#,
            br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":{"a":1}}}]}]}"#,
            b"\xff\xfe",
        ] {
            assert!(split_webhook(body, 0).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn many_statuses_all_become_events() {
        let statuses: Vec<_> = (0..1000)
            .map(|i| json!({"id":format!("wamid.{i}"),"status":"delivered","timestamp":"1","recipient_id":"1"}))
            .collect();
        let events = split(&messages_change(json!({"statuses": statuses})));
        assert_eq!(events.len(), 1000);
        assert_eq!(events[999]["event_id"], "wamid.999:delivered");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = split_webhook(&body, 0);
        }

        #[test]
        fn arbitrary_json_in_the_envelope_never_panics(value in "[\\[\\]{}:,\"a-z0-9 ]{0,64}", field in "[a-z_]{0,12}") {
            let body = format!(r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"{field}","value":{value}}}]}}]}}"#);
            let _ = split_webhook(body.as_bytes(), 0);
            let body = format!(r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"messages":[{value}],"statuses":{value}}}}}]}}]}}"#);
            let _ = split_webhook(body.as_bytes(), 0);
        }
    }
}
