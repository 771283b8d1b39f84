//! Typed model of the webhook payloads Meta POSTs for WhatsApp Business Accounts.
//!
//! Everything is lenient on purpose: optional fields are `Option`, unknown message types and statuses
//! become `Unknown(String)`, unknown fields are kept in `extra`, and identifiers that Meta sends
//! sometimes as strings and sometimes as numbers (`wa_id` in group events) are accepted either way.
//! A new Meta field or type is never a parse error.
//!
//! The ingest path does not need these types (it splits on a borrowed view, see [`crate::event`]);
//! consumers use them through [`crate::event::InboundEvent`] accessors.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Unknown fields, kept as they came.
pub type Extra = Map<String, Value>;

/// A string Meta sometimes sends as a JSON number (ids, `wa_id`s, timestamps).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(transparent)]
pub struct FlexString(pub String);

impl<'de> Deserialize<'de> for FlexString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlexVisitor).map(Self)
    }
}

/// A string, number or boolean as text, read straight from the deserializer: no buffering (an
/// untagged enum would copy every value first), one allocation for a string.
struct FlexVisitor;

impl serde::de::Visitor<'_> for FlexVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, a number or a boolean")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        // Written as serde_json writes the number (`1.5`, `1e300`); non-finite never comes from JSON.
        serde_json::Number::from_f64(v).map(|n| n.to_string()).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

impl FlexString {
    /// The value as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as Unix seconds, when it is an integer.
    #[must_use]
    pub fn as_unix_seconds(&self) -> Option<i64> {
        self.0.trim().parse().ok()
    }
}

macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )+
            /// A value this version does not know yet, kept verbatim.
            Unknown(String),
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Unknown(value),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.as_str().to_owned()
            }
        }

        impl $name {
            /// The wire form.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(other) => other,
                }
            }
        }
    };
}

open_enum!(
    /// `messages[].type`.
    MessageType {
        Text => "text", Image => "image", Video => "video", Audio => "audio", Document => "document",
        Sticker => "sticker", Location => "location", Contacts => "contacts", Interactive => "interactive",
        Button => "button", Reaction => "reaction", Order => "order", System => "system",
        Unsupported => "unsupported", RequestWelcome => "request_welcome", Edit => "edit", Revoke => "revoke",
    }
);

open_enum!(
    /// `statuses[].status`.
    StatusKind {
        Sent => "sent", Delivered => "delivered", Read => "read", Failed => "failed", Played => "played",
        Deleted => "deleted", Warning => "warning",
    }
);

/// The whole POST body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// Always `whatsapp_business_account` for these webhooks.
    pub object: String,
    /// One entry per WhatsApp Business Account.
    #[serde(default)]
    pub entry: Vec<Entry>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One WABA's changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    pub id: FlexString,
    /// Unix time of the entry, when Meta sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<FlexString>,
    /// The changes.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One change: a subscribed `field` and its `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The webhook field (`messages`, `message_template_status_update`, ...).
    pub field: String,
    /// The field's value, kept as JSON; see [`Change::typed`].
    pub value: Value,
}

/// A change's value, typed by its field.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedChange {
    /// `messages`: inbound messages, statuses and errors.
    Messages(MessagesValue),
    /// `message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// `template_category_update`.
    TemplateCategory(TemplateCategoryUpdate),
    /// `message_template_quality_update`.
    TemplateQuality(TemplateQualityUpdate),
    /// `account_update`, `account_alerts`, `account_review_update`.
    Account(AccountUpdate),
    /// `phone_number_quality_update`, `business_capability_update`, `phone_number_name_update`.
    Capacity(CapacityUpdate),
    /// `user_preferences`: marketing opt-out and resume.
    UserPreferences(UserPreferencesValue),
    /// Any other field (groups, calls, flows, echoes, and fields Meta adds later), as JSON.
    Other(Value),
}

impl Change {
    /// Interprets the value according to the field.
    pub fn typed(&self) -> Result<TypedChange, serde_json::Error> {
        typed_change(&self.field, self.value.clone())
    }
}

/// Interprets a change value according to its field.
pub fn typed_change(field: &str, value: Value) -> Result<TypedChange, serde_json::Error> {
    Ok(match field {
        "messages" => TypedChange::Messages(serde_json::from_value(value)?),
        "message_template_status_update" => TypedChange::TemplateStatus(serde_json::from_value(value)?),
        "template_category_update" => TypedChange::TemplateCategory(serde_json::from_value(value)?),
        "message_template_quality_update" => TypedChange::TemplateQuality(serde_json::from_value(value)?),
        "account_update" | "account_alerts" | "account_review_update" => {
            TypedChange::Account(serde_json::from_value(value)?)
        }
        "phone_number_quality_update" | "business_capability_update" | "phone_number_name_update" => {
            TypedChange::Capacity(serde_json::from_value(value)?)
        }
        "user_preferences" => TypedChange::UserPreferences(serde_json::from_value(value)?),
        _ => TypedChange::Other(value),
    })
}

/// The value of a `messages` change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagesValue {
    /// Always `whatsapp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    /// The business number the change concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Sender profiles of the messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// Inbound messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// Statuses of messages we sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    /// Errors not tied to one message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphError>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `value.metadata`: which business number.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// The number as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<FlexString>,
    /// The Graph id of the business number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<FlexString>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `value.contacts[]`: the profile of a user who wrote to us.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    /// `profile.name` and friends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The user's WhatsApp id (phone number digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<FlexString>,
    /// The business-scoped user id (BSUID), when Meta sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contacts[].profile`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The wamid.
    pub id: String,
    /// The sender's wa_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FlexString>,
    /// The sender's BSUID, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<FlexString>,
    /// The message type.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// What this message replies to or forwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    /// `type: text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// `type: image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Media>,
    /// `type: video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Media>,
    /// `type: audio` (voice notes have `voice: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Media>,
    /// `type: document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Media>,
    /// `type: sticker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<Media>,
    /// `type: location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// `type: contacts`: shared contact cards, kept as JSON (their schema is wide and stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Value>>,
    /// `type: interactive`: button, list and flow replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<Interactive>,
    /// `type: button`: a template quick-reply button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<ButtonReply>,
    /// `type: reaction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// `type: order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// `type: system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// Click-to-WhatsApp ad referral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// Errors (for `type: unsupported`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphError>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Message {
    /// The id to key the user's state on: the BSUID when present, else the wa_id.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.from_user_id.as_deref().or(self.from.as_ref().map(FlexString::as_str))
    }
}

/// `messages[].context`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageContext {
    /// The number the original message came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FlexString>,
    /// The wamid replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The message was forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// The message was forwarded many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    /// The product a user asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Text {
    /// The text.
    #[serde(default)]
    pub body: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Inbound media (image, video, audio, document, sticker).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Media {
    /// The media id (valid 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// SHA-256 of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Audio recorded as a voice note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Animated sticker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `location`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Location {
    /// Latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Place name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `interactive`: the user's answer to an interactive message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interactive {
    /// `button_reply`, `list_reply`, `nfm_reply`, `call_permission_reply`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The reply button chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_reply: Option<ReplyChoice>,
    /// The list row chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_reply: Option<ReplyChoice>,
    /// A completed flow (`response_json` is a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfm_reply: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reply button or list row the user picked.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplyChoice {
    /// The id we gave it.
    #[serde(default)]
    pub id: String,
    /// Its title.
    #[serde(default)]
    pub title: String,
    /// List rows only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `button`: a template quick reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ButtonReply {
    /// The payload set on the template button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The button text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `reaction`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reaction {
    /// The wamid reacted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The emoji; absent when a reaction is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `order`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Order {
    /// Catalog id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<FlexString>,
    /// Text sent with the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Items ordered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product_items: Vec<ProductItem>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `order.product_items[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductItem {
    /// Retailer's product id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<FlexString>,
    /// Quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<FlexString>,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<FlexString>,
    /// Currency code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `system`: number changes and identity changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct System {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `user_changed_number`, `user_identity_changed`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The user's new wa_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<FlexString>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `referral`: the ad or post that started the conversation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Referral {
    /// URL of the ad or post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Ad or post id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Click-to-WhatsApp click id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// Unknown fields (headline, body, media, welcome message, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A status update for a message we sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The wamid of our message.
    pub id: String,
    /// sent, delivered, read, failed, ...
    pub status: StatusKind,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<FlexString>,
    /// The recipient's wa_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<FlexString>,
    /// The recipient's BSUID, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// The conversation (absent under per-message pricing, except free entry points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// What Meta charges for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphError>,
    /// Our correlation data, echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Status {
    /// The id to key the user's state on: the BSUID when present, else the wa_id.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.recipient_user_id.as_deref().or(self.recipient_id.as_ref().map(FlexString::as_str))
    }
}

/// `statuses[].conversation`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Conversation {
    /// Conversation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the conversation window ends (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<FlexString>,
    /// `origin.type`: marketing, utility, service, free_entry_point, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `statuses[].pricing`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pricing {
    /// Whether the message is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// `PMP` (per message) or `CBP` (per conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    /// marketing, utility, authentication, service, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// regular, free_customer_service, free_entry_point.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Graph API error, in a webhook or in a send response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GraphError {
    /// Meta's error code (the thing to branch on).
    #[serde(default)]
    pub code: i64,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `error_data.details`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_template_status_update`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// APPROVED, REJECTED, PAUSED, DISABLED, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Template id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<FlexString>,
    /// Template name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// Template language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// Why (for rejections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `template_category_update`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateCategoryUpdate {
    /// Template id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<FlexString>,
    /// Template name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// Template language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// Category before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    /// Category now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_category: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_template_quality_update`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateQualityUpdate {
    /// Template id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<FlexString>,
    /// Template name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// Quality before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_quality_score: Option<String>,
    /// Quality now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_quality_score: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `account_update` and other account events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// VERIFIED_ACCOUNT, DISABLED_UPDATE, ACCOUNT_VIOLATION, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The number concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<FlexString>,
    /// Unknown fields (ban, restriction and violation info).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Quality, limit-tier and capability updates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CapacityUpdate {
    /// The number concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<FlexString>,
    /// FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Messaging limit tier (TIER_250, TIER_1K, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_limit: Option<String>,
    /// Business-initiated conversations per 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversation_per_phone: Option<i64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `user_preferences`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserPreferencesValue {
    /// The business number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Users concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// The preference changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_preferences: Vec<UserPreference>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One user's marketing preference change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserPreference {
    /// The user's wa_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<FlexString>,
    /// The user's BSUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `marketing_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `stop` or `resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<FlexString>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_fields_are_kept() {
        let m: Message = serde_json::from_str(
            r#"{"id":"wamid.X","from":"1","timestamp":"5","type":"hologram","hologram":{"x":1},"new_field":true}"#,
        )
        .unwrap();
        assert_eq!(m.kind, MessageType::Unknown("hologram".into()));
        assert_eq!(m.extra["hologram"]["x"], 1);
        assert_eq!(m.extra["new_field"], true);
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["type"], "hologram");
        assert_eq!(back["new_field"], true);
    }

    #[test]
    fn ids_accept_numbers() {
        let c: Contact = serde_json::from_str(r#"{"wa_id":16505551234}"#).unwrap();
        assert_eq!(c.wa_id.unwrap().as_str(), "16505551234");
        assert_eq!(FlexString("1750269342".into()).as_unix_seconds(), Some(1_750_269_342));
        let flex = |json: &str| serde_json::from_str::<FlexString>(json).map(|f| f.0);
        assert_eq!(flex(r#""abc""#).unwrap(), "abc");
        assert_eq!(flex(r#""a\"b\u00e9""#).unwrap(), "a\"b\u{e9}", "escapes are decoded");
        assert_eq!(flex("16505551234").unwrap(), "16505551234");
        assert_eq!(flex("-42").unwrap(), "-42");
        assert_eq!(flex("18446744073709551615").unwrap(), "18446744073709551615");
        assert_eq!(flex("1.5").unwrap(), "1.5");
        assert_eq!(flex("1e300").unwrap(), serde_json::Number::from_f64(1e300).unwrap().to_string());
        assert_eq!(flex("true").unwrap(), "true");
        for bad in ["null", "{}", "[1]", r#"{"a":"b"}"#] {
            assert!(flex(bad).is_err(), "{bad} is not a flex string");
        }
        let contact: Contact = serde_json::from_str(r#"{"wa_id":null}"#).unwrap();
        assert_eq!(contact.wa_id, None, "null is an absent optional id");
    }

    #[test]
    fn statuses_with_pricing_and_bsuid() {
        let s: Status = serde_json::from_str(
            r#"{"id":"wamid.A","status":"delivered","timestamp":"1","recipient_id":"155","recipient_user_id":"US.1",
                "pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"},
                "biz_opaque_callback_data":"cb"}"#,
        )
        .unwrap();
        assert_eq!(s.status, StatusKind::Delivered);
        assert_eq!(s.user_id(), Some("US.1"));
        assert_eq!(s.pricing.unwrap().kind.as_deref(), Some("regular"));
    }

    #[test]
    fn typed_changes_by_field() {
        let v = serde_json::json!({"event":"APPROVED","message_template_id":123,"message_template_name":"hi"});
        match typed_change("message_template_status_update", v).unwrap() {
            TypedChange::TemplateStatus(t) => {
                assert_eq!(t.message_template_id.unwrap().as_str(), "123")
            }
            other => panic!("{other:?}"),
        }
        let v = serde_json::json!({"user_preferences":[{"wa_id":"1","category":"marketing_messages","value":"stop"}]});
        match typed_change("user_preferences", v).unwrap() {
            TypedChange::UserPreferences(u) => {
                assert_eq!(u.user_preferences[0].value.as_deref(), Some("stop"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(typed_change("calls", serde_json::json!({})).unwrap(), TypedChange::Other(_)));
    }
}
