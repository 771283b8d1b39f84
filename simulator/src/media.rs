//! The media API as `reference/CLOUD_API_2026.md` §2 describes it, with rules of its own:
//! `POST /{phone-number-id}/media` (multipart; MIME type and size per kind, else 131053) → `{"id"}`;
//! `GET /{media-id}` → a download URL valid 5 minutes, `file_size` as a string; the download only
//! with the bearer token (404 once the URL expired); `DELETE /{media-id}`. Users send media
//! through `POST /_sim/inbound_media` (real bytes; the webhook carries `id`, `sha256` as base64 and
//! `url`). Faults on the `media_download` endpoint: `corrupt` (a byte flipped), `http_status`
//! (the download fails); `expired_url` on `media_webhook` / `media_info` hands out a URL that has
//! already expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{FaultKind, Shared, lock, meta_error, respond, take_fault_for};

/// How long a download URL works (Meta: 5 minutes).
pub const URL_LIFETIME: Duration = Duration::from_secs(300);

/// A stored file.
#[derive(Clone)]
pub(crate) struct StoredMedia {
    bytes: Arc<Vec<u8>>,
    mime_type: String,
    sha256: String,
    /// The business number it belongs to (the uploader, or the one the user wrote to).
    phone_number_id: String,
}

/// The simulator's files.
#[derive(Default)]
pub(crate) struct MediaFiles {
    files: HashMap<String, StoredMedia>,
    deleted: Vec<String>,
    uploads: u64,
    downloads: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The kind Meta files a MIME type under, and its size limit: the simulator's own table.
fn kind_of(mime: &str) -> Option<(&'static str, usize)> {
    const MB: usize = 1024 * 1024;
    Some(match mime.split(';').next().unwrap_or_default().trim() {
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => ("document", 100 * MB),
        _ => return None,
    })
}

/// Bytes for a simulated file: `size` bytes from a seed (the same seed, the same file).
#[must_use]
pub fn file_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Base64 of the SHA-256 of `bytes`, as Meta's webhooks write it.
#[must_use]
pub fn digest_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn new_id(shared: &Shared) -> String {
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    format!("{}{serial:010}", 7_000_000 + shared.instance % 1_000_000)
}

/// Stores a file; returns its id.
pub(crate) fn store(shared: &Shared, phone_number_id: &str, bytes: Vec<u8>, mime_type: &str) -> (String, String) {
    let id = new_id(shared);
    let sha256 = digest_b64(&bytes);
    lock(&shared.media).files.insert(
        id.clone(),
        StoredMedia {
            bytes: Arc::new(bytes),
            mime_type: mime_type.to_owned(),
            sha256: sha256.clone(),
            phone_number_id: phone_number_id.to_owned(),
        },
    );
    (id, sha256)
}

/// A download URL for `id` (already expired when a fault says so).
pub(crate) fn download_url(shared: &Shared, base: &str, id: &str, endpoint: &str) -> String {
    let expired = matches!(take_fault_for(shared, endpoint, ""), Some(FaultKind::ExpiredUrl));
    let until = if expired { now_ms().saturating_sub(1) } else { now_ms() + URL_LIFETIME.as_millis() as u64 };
    format!("{base}/_sim/media/{id}?mid={id}&exp={until}")
}

pub(crate) fn bearer_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| crate::admin::token_info(shared, t))
        .is_some_and(|info| info.usable(crate::admin::now_s()))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// One part of a multipart body.
struct Part {
    name: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Reads a `multipart/form-data` body (RFC 7578), the simulator's own reader.
fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let first = find(rest, delimiter.as_bytes())?;
    rest = &rest[first + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let header_end = find(rest, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&rest[..header_end]).ok()?;
        rest = &rest[header_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())?;
        let mut part = Part { name: String::new(), content_type: None, body: rest[..end].to_vec() };
        for line in headers.split("\r\n") {
            let (key, value) = line.split_once(':')?;
            match key.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    part.name = value
                        .split(';')
                        .find_map(|p| p.trim().strip_prefix("name="))
                        .map(|n| n.trim_matches('"').to_owned())
                        .unwrap_or_default();
                }
                "content-type" => part.content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        parts.push(part);
        rest = &rest[end + 2 + delimiter.len()..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `POST /{version}/{phone_number_id}/media`.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(parts) = multipart(content_type, &body) else {
        return respond(400, meta_error(100, "Invalid parameter", Some("the body is not multipart/form-data"), trace));
    };
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    if field("messaging_product").map(|p| p.body.as_slice()) != Some(b"whatsapp".as_slice()) {
        return respond(400, meta_error(100, "Invalid parameter", Some("messaging_product must be whatsapp"), trace));
    }
    let Some(file) = field("file") else {
        return respond(400, meta_error(100, "Invalid parameter", Some("file is required"), trace));
    };
    let mime = file.content_type.clone().unwrap_or_default();
    let fail = |details: String| respond(400, meta_error(131_053, "Media upload error", Some(&details), trace));
    let Some((kind, max)) = kind_of(&mime) else {
        return fail(format!("Unsupported file type {mime:?}"));
    };
    if file.body.is_empty() || file.body.len() > max {
        return fail(format!("{kind} files are 1 to {max} bytes, this one {}", file.body.len()));
    }
    let (id, _) = store(&shared, &phone_number_id, file.body.clone(), &mime);
    lock(&shared.media).uploads += 1;
    respond(200, json!({"id": id}))
}

/// `GET /{version}/{media-id}`: the media's URL; `None` when the id is not a media id.
pub(crate) fn info(
    shared: &Shared,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let stored = lock(&shared.media).files.get(id).cloned();
    let Some(stored) = stored else {
        return lock(&shared.media).deleted.contains(&id.to_owned()).then(|| {
            respond(400, json!({"error": {"message": "Unsupported get request. Object does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": format!("Sim{trace:08X}")}}))
        });
    };
    if !bearer_ok(shared, headers) {
        return Some(respond(401, meta_error(190, "Invalid OAuth access token", None, trace)));
    }
    if query.get("phone_number_id").is_some_and(|p| *p != stored.phone_number_id) {
        return Some(respond(
            400,
            meta_error(100, "Invalid parameter", Some("phone_number_id does not own this media"), trace),
        ));
    }
    let url = download_url(shared, &base_url(headers), id, "media_info");
    Some(respond(
        200,
        json!({"messaging_product": "whatsapp", "url": url, "mime_type": stored.mime_type, "sha256": stored.sha256,
               "file_size": stored.bytes.len().to_string(), "id": id}),
    ))
}

/// `DELETE /{version}/{media-id}`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let mut media = lock(&shared.media);
    if media.files.remove(&id).is_some() {
        media.deleted.push(id);
        respond(200, json!({"success": true}))
    } else {
        respond(400, meta_error(100, "Invalid parameter", Some("no such media"), trace))
    }
}

/// `GET /_sim/media/{id}?exp=…`: the bytes, with the bearer token only, until the URL expires.
pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(&shared, &headers) {
        return (axum::http::StatusCode::UNAUTHORIZED, "").into_response();
    }
    let expired = query.get("exp").and_then(|e| e.parse::<u64>().ok()).is_none_or(|exp| exp < now_ms());
    let stored = lock(&shared.media).files.get(&id).cloned();
    let Some(stored) = stored.filter(|_| !expired) else {
        return (axum::http::StatusCode::NOT_FOUND, "").into_response();
    };
    let mut bytes = stored.bytes.as_ref().clone();
    match take_fault_for(&shared, "media_download", "") {
        Some(FaultKind::Corrupt) => {
            if let Some(byte) = bytes.get_mut(0) {
                *byte ^= 0xff;
            }
        }
        Some(FaultKind::HttpStatus { status, .. }) => {
            return axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        _ => {}
    }
    lock(&shared.media).downloads += 1;
    ([(axum::http::header::CONTENT_TYPE, stored.mime_type)], bytes).into_response()
}

/// A user sends a file (`POST /_sim/inbound_media`).
#[derive(Debug, Clone, Deserialize)]
pub struct InboundMedia {
    /// The business number written to.
    pub phone_number_id: String,
    /// The user's phone.
    pub from: String,
    /// `image`, `document`, `audio`, `video` or `sticker`.
    #[serde(rename = "type")]
    pub kind: String,
    /// MIME type.
    pub mime_type: String,
    /// Size of the generated file, in bytes (ignored with `data_base64`).
    #[serde(default)]
    pub size: usize,
    /// Seed of the generated file.
    #[serde(default)]
    pub seed: u64,
    /// The file itself, instead of generated bytes.
    #[serde(default)]
    pub data_base64: Option<String>,
    /// A document's file name.
    #[serde(default)]
    pub filename: Option<String>,
    /// A caption (image, video, document).
    #[serde(default)]
    pub caption: Option<String>,
    /// Leave `url` out of the webhook (as before late 2025): the receiver asks `GET /{media-id}`.
    #[serde(default)]
    pub omit_url: bool,
}

/// What the simulator posted: the message's wamid, the media id and the file's digest (base64).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SentMedia {
    /// The inbound message's wamid.
    pub wamid: String,
    /// The media id.
    pub media_id: String,
    /// Base64 SHA-256 of the bytes.
    pub sha256: String,
}

pub(crate) async fn deliver(shared: &Shared, base: &str, media: &InboundMedia) -> Result<SentMedia, String> {
    let config = lock(&shared.config).clone();
    let url = config.webhook_url.clone().ok_or("the simulator has no webhook URL to post to")?;
    let bytes = match &media.data_base64 {
        Some(data) => base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| e.to_string())?,
        None => file_bytes(media.size, media.seed),
    };
    let (id, sha256) = store(shared, &media.phone_number_id, bytes, &media.mime_type);
    let mut object = json!({"mime_type": media.mime_type, "sha256": sha256, "id": id});
    if !media.omit_url {
        object["url"] = json!(download_url(shared, base, &id, "media_webhook"));
    }
    if let Some(filename) = &media.filename {
        object["filename"] = json!(filename);
    }
    if let Some(caption) = &media.caption {
        object["caption"] = json!(caption);
    }
    if media.kind == "audio" {
        object["voice"] = json!(false);
    }
    let phone = media.from.trim_start_matches('+');
    let bsuid = lock(&shared.users).bsuid(&config.waba_id, phone);
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(format!("SIM:{}:MEDIA:{serial:012}", shared.instance))
    );
    let timestamp = crate::admin::now_s();
    let mut message = json!({"from": phone, "from_user_id": bsuid, "id": wamid, "timestamp": timestamp.to_string(), "type": media.kind});
    message[media.kind.as_str()] = object;
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": config.waba_id, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": crate::display_number(&media.phone_number_id), "phone_number_id": media.phone_number_id},
            "contacts": [{"profile": {"name": "Simulated User"}, "wa_id": phone, "user_id": bsuid}],
            "messages": [message],
        }}]}],
    });
    if crate::post_webhook(shared, &config, &url, &payload).await {
        Ok(SentMedia { wamid, media_id: id, sha256 })
    } else {
        Err("the webhook did not answer 200".into())
    }
}

pub(crate) async fn inbound_route(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Json(media): axum::Json<InboundMedia>,
) -> Response {
    match deliver(&shared, &base_url(&headers), &media).await {
        Ok(sent) => respond(200, serde_json::to_value(sent).unwrap_or(Value::Null)),
        Err(error) => respond(502, json!({"error": error})),
    }
}

/// (uploads, downloads) so far.
pub(crate) fn counts(shared: &Shared) -> (u64, u64) {
    let media = lock(&shared.media);
    (media.uploads, media.downloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--x\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"whatsapp");
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].body, b"%PDF\r\n--x", "a line that only looks like a boundary stays");
        assert!(multipart("multipart/form-data", body).is_none(), "no boundary");
    }

    #[test]
    fn generated_files_are_stable() {
        assert_eq!(file_bytes(1000, 7), file_bytes(1000, 7));
        assert_ne!(file_bytes(1000, 7), file_bytes(1000, 8));
        assert_eq!(file_bytes(13, 1).len(), 13);
        assert_eq!(digest_b64(b"").len(), 44);
    }
}
