//! Media, pure: what an inbound media message names (id, URL, digest, MIME type), where its bytes
//! are stored, the `media` reference consumers get instead of Meta's id, and Meta's type, MIME and
//! size rules (`reference/CLOUD_API_2026.md` §2).
//!
//! The webhook's `sha256` is base64 of the SHA-256 digest (44 characters); hex (64) is accepted too.
//! A stored object's key is content-addressed (`media/<phone_number_id>/<hex digest>.<ext>`), so a
//! redelivered message's media is stored once.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::webhook::{Media, Message};

/// Key prefix of media objects in the payload bucket.
pub const MEDIA_PREFIX: &str = "media/";

/// A type of media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// `image`.
    Image,
    /// `audio` (voice notes too).
    Audio,
    /// `video`.
    Video,
    /// `document`.
    Document,
    /// `sticker`.
    Sticker,
}

impl MediaKind {
    /// The kind named `name` (a message `type`).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "image" => Some(Self::Image),
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            "document" => Some(Self::Document),
            "sticker" => Some(Self::Sticker),
            _ => None,
        }
    }

    /// The message `type`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// The MIME types Meta accepts for this kind, and the largest file, in bytes (stickers: the
    /// animated limit; static ones are 100 KB).
    #[must_use]
    pub fn rules(self) -> (&'static [&'static str], u64) {
        const MB: u64 = 1024 * 1024;
        match self {
            Self::Image => (&["image/jpeg", "image/png"], 5 * MB),
            Self::Audio => (&["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"], 16 * MB),
            Self::Video => (&["video/mp4", "video/3gpp"], 16 * MB),
            Self::Document => (
                &[
                    "text/plain",
                    "application/pdf",
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ],
                100 * MB,
            ),
            Self::Sticker => (&["image/webp"], 500 * 1024),
        }
    }
}

/// Why a file cannot be sent as a kind of media: the rule and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {detail}")]
pub struct MediaViolation {
    /// `media.mime_type` or `media.size`.
    pub rule: &'static str,
    /// What is wrong.
    pub detail: String,
}

/// Checks a file of `size` bytes and `mime_type` against Meta's rules for `kind` (parameters
/// such as `; codecs=opus` are ignored; `audio/ogg` is for Opus mono only, which the bytes say).
pub fn check_file(kind: MediaKind, mime_type: &str, size: u64) -> Result<(), MediaViolation> {
    let (types, max) = kind.rules();
    let essence = mime_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !types.contains(&essence.as_str()) {
        return Err(MediaViolation {
            rule: "media.mime_type",
            detail: format!("{} takes {}, not {essence:?}", kind.as_str(), types.join(", ")),
        });
    }
    if size == 0 || size > max {
        return Err(MediaViolation {
            rule: "media.size",
            detail: format!("{} files are 1 to {max} bytes, this one {size}", kind.as_str()),
        });
    }
    Ok(())
}

/// A media object named in S3 by a send request: `{"document": {"s3": {"bucket", "key"}, …}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Media {
    /// The message type.
    pub kind: MediaKind,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
}

impl S3Media {
    /// The S3 object a message's media names, if it names one.
    #[must_use]
    pub fn of(message: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        let kind = MediaKind::parse(message.get("type").and_then(serde_json::Value::as_str)?)?;
        let s3 = message.get(kind.as_str())?.get("s3")?;
        let text = |name: &str| s3.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        Some(Self { kind, bucket: text("bucket")?, key: text("key")? })
    }

    /// The message with the S3 object replaced by Meta's media `id` (everything else unchanged).
    #[must_use]
    pub fn with_id(
        &self,
        message: &serde_json::Map<String, serde_json::Value>,
        id: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut message = message.clone();
        if let Some(serde_json::Value::Object(media)) = message.get_mut(self.kind.as_str()) {
            media.remove("s3");
            media.insert("id".into(), serde_json::Value::String(id.to_owned()));
        }
        message
    }

    /// The object's identity for the media-id cache: SHA-256 of bucket, key and version tag (the
    /// ETag changes whenever the content does), hex.
    #[must_use]
    pub fn digest(&self, etag: Option<&str>) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for part in [self.bucket.as_str(), self.key.as_str(), etag.unwrap_or_default()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// The file name Meta shows for a document: the request's `filename`, else the key's last part.
    #[must_use]
    pub fn filename(&self, message: &serde_json::Map<String, serde_json::Value>) -> String {
        message
            .get(self.kind.as_str())
            .and_then(|m| m.get("filename"))
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| self.key.rsplit('/').next().unwrap_or("file").to_owned(), str::to_owned)
    }
}

/// The MIME type of an object: its stored `Content-Type` unless missing or generic, else by the
/// key's extension.
#[must_use]
pub fn object_mime(content_type: Option<&str>, key: &str) -> String {
    if let Some(stored) = content_type
        .filter(|t| !t.is_empty() && !t.starts_with("application/octet-stream") && !t.starts_with("binary/"))
    {
        return stored.to_owned();
    }
    let extension = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "m4a" => "audio/mp4",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// What an inbound media message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMedia {
    /// The message type.
    pub kind: MediaKind,
    /// Meta's media id (valid 7 days).
    pub id: Option<String>,
    /// A download URL given in the webhook (since late 2025), fetched with the access token.
    pub url: Option<String>,
    /// The expected SHA-256 digest, when the webhook gave a readable one.
    pub digest: Option<[u8; 32]>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Meta's error on the message (131052: the user's media could not be downloaded).
    pub error: Option<i64>,
}

impl InboundMedia {
    /// The media of a message, when it is a media message.
    #[must_use]
    pub fn of(message: &Message) -> Option<Self> {
        let kind = MediaKind::parse(message.kind.as_str())?;
        let media: Option<&Media> = match kind {
            MediaKind::Image => message.image.as_ref(),
            MediaKind::Audio => message.audio.as_ref(),
            MediaKind::Video => message.video.as_ref(),
            MediaKind::Document => message.document.as_ref(),
            MediaKind::Sticker => message.sticker.as_ref(),
        };
        Some(Self {
            kind,
            id: media.and_then(|m| m.id.clone()),
            url: media.and_then(|m| m.extra.get("url")).and_then(serde_json::Value::as_str).map(str::to_owned),
            digest: media.and_then(|m| m.sha256.as_deref()).and_then(parse_digest),
            mime_type: media.and_then(|m| m.mime_type.clone()),
            error: message.errors.first().map(|e| e.code),
        })
    }
}

/// A webhook digest: base64 of 32 bytes (Meta), or 64 hex characters.
#[must_use]
pub fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()?
    };
    bytes.try_into().ok()
}

/// The file extension for a MIME type (`bin` when unknown).
#[must_use]
pub fn extension(mime_type: &str) -> &'static str {
    match mime_type.split(';').next().unwrap_or_default().trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" | "video/mp4" => "mp4",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "video/3gpp" => "3gp",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        _ => "bin",
    }
}

/// Where a file is stored: by its digest when the webhook gave one (stored once however often the
/// message comes), else by Meta's media id.
#[must_use]
pub fn object_key(phone_number_id: &str, digest: Option<&[u8; 32]>, media_id: &str, mime_type: &str) -> String {
    let name = digest.map_or_else(|| format!("id-{}", sanitize(media_id)), hex::encode);
    format!("{MEDIA_PREFIX}{}/{name}.{}", sanitize(phone_number_id), extension(mime_type))
}

fn sanitize(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(128).collect()
}

/// The `media` member of an events-queue message: where the file is, or why it is not there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// The bucket (`local` on the local stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Hex SHA-256 of the stored bytes (checked against the webhook's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Why the file could not be stored (then nothing is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MediaFailure>,
}

/// Why an inbound file could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFailure {
    /// `expired` (Meta no longer has it), `meta_error` (131052 and the like), `digest_mismatch`,
    /// `too_many_attempts`, `no_media_id`.
    pub reason: String,
    /// Meta's code, when Meta gave one.
    pub code: Option<i64>,
    /// What happened, for people.
    pub detail: String,
}

/// Adds `"media": {...}` in front of an events-queue message without re-serializing it.
#[must_use]
pub fn splice_media(body: &str, media: &MediaRef) -> String {
    let Ok(media) = serde_json::to_string(media) else { return body.to_owned() };
    match body.trim_start().strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('"') => format!("{{\"media\":{media},{rest}"),
        _ => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_base64_or_hex() {
        let hex_digest = "49f22763480625b94251b5c1b17ba4f8503d05919efcfe9fb4ced35f41946502";
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_digest).unwrap());
        assert_eq!(b64.len(), 44);
        assert_eq!(parse_digest(&b64).map(hex::encode).as_deref(), Some(hex_digest));
        assert_eq!(parse_digest(hex_digest).map(hex::encode).as_deref(), Some(hex_digest));
        assert!(parse_digest("SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=").is_some(), "Meta's example");
        for bad in ["", "abc", "not base64!", "AAAA"] {
            assert_eq!(parse_digest(bad), None, "{bad}");
        }
    }

    #[test]
    fn meta_file_rules_as_a_table() {
        const MB: u64 = 1024 * 1024;
        let table = [
            (MediaKind::Document, "application/pdf", 20 * MB, None),
            (MediaKind::Document, "application/pdf", 100 * MB, None),
            (MediaKind::Document, "application/pdf", 100 * MB + 1, Some("media.size")),
            (MediaKind::Document, "application/zip", 10, Some("media.mime_type")),
            (MediaKind::Image, "image/jpeg", 5 * MB, None),
            (MediaKind::Image, "image/webp", 10, Some("media.mime_type")),
            (MediaKind::Image, "IMAGE/PNG", 10, None),
            (MediaKind::Audio, "audio/ogg; codecs=opus", 10, None),
            (MediaKind::Audio, "audio/ogg", 16 * MB + 1, Some("media.size")),
            (MediaKind::Video, "video/mp4", 0, Some("media.size")),
            (MediaKind::Sticker, "image/webp", 500 * 1024, None),
            (MediaKind::Sticker, "image/png", 10, Some("media.mime_type")),
        ];
        for (kind, mime, size, expected) in table {
            assert_eq!(check_file(kind, mime, size).err().map(|v| v.rule), expected, "{kind:?} {mime} {size}");
        }
    }

    #[test]
    fn an_s3_object_becomes_a_media_id() {
        let message = serde_json::json!({"type": "document", "document": {"s3": {"bucket": "reports", "key": "2026/42.pdf"}, "filename": "report.pdf", "caption": "Lab"}});
        let message = message.as_object().unwrap().clone();
        let s3 = S3Media::of(&message).unwrap();
        assert_eq!((s3.kind, s3.bucket.as_str(), s3.key.as_str()), (MediaKind::Document, "reports", "2026/42.pdf"));
        assert_eq!(s3.filename(&message), "report.pdf");
        let sent = s3.with_id(&message, "1037543291543636");
        assert_eq!(
            serde_json::Value::Object(sent),
            serde_json::json!({"type": "document", "document": {"id": "1037543291543636", "filename": "report.pdf", "caption": "Lab"}})
        );
        assert_ne!(s3.digest(Some("\"a\"")), s3.digest(Some("\"b\"")), "a new version is a new file");
        assert_eq!(s3.digest(Some("x")), s3.digest(Some("x")));
        let text = serde_json::json!({"type": "text", "text": {"body": "x"}});
        assert!(S3Media::of(text.as_object().unwrap()).is_none());
        assert_eq!(object_mime(None, "a/b.PDF"), "application/pdf");
        assert_eq!(object_mime(Some("binary/octet-stream"), "x.png"), "image/png");
        assert_eq!(object_mime(Some("image/jpeg"), "x.png"), "image/jpeg");
        assert_eq!(object_mime(None, "noext"), "application/octet-stream");
    }

    #[test]
    fn keys_are_content_addressed() {
        let digest = [7u8; 32];
        assert_eq!(
            object_key("106540352242922", Some(&digest), "1003383421387256", "application/pdf"),
            format!("media/106540352242922/{}.pdf", hex::encode(digest))
        );
        assert_eq!(object_key("1", None, "../../etc", "image/jpeg"), "media/1/id-etc.jpg", "no path tricks");
    }

    #[test]
    fn a_media_message_is_read_and_the_reference_spliced() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "from": "16505551234", "id": "wamid.1", "type": "document",
            "document": {"filename": "r.pdf", "mime_type": "application/pdf", "id": "622684793477189",
                         "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=", "url": "https://lookaside.example/?mid=1"}}))
        .unwrap();
        let media = InboundMedia::of(&message).unwrap();
        assert_eq!(media.kind, MediaKind::Document);
        assert_eq!(media.url.as_deref(), Some("https://lookaside.example/?mid=1"));
        assert!(media.digest.is_some());
        let text: Message =
            serde_json::from_value(serde_json::json!({"id": "w", "type": "text", "text": {"body": "x"}})).unwrap();
        assert!(InboundMedia::of(&text).is_none());
        let reference = MediaRef {
            bucket: Some("b".into()),
            key: Some("media/1/x.pdf".into()),
            size: Some(3),
            sha256: Some("ab".into()),
            mime_type: Some("application/pdf".into()),
            error: None,
        };
        let spliced = splice_media(r#"{"conversation":null,"version":1}"#, &reference);
        let value: serde_json::Value = serde_json::from_str(&spliced).unwrap();
        assert_eq!(value["media"]["key"], "media/1/x.pdf");
        assert_eq!(value["version"], 1);
    }
}
