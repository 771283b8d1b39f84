//! `wa send`: a producer. Builds a SendRequest v1, checks it as the sender will, and puts it on
//! the local stack's outbound queue or a real SQS FIFO queue (group `phone_number_id#to`,
//! deduplication id = the idempotency key).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wa_core::send::SendRequest;

use crate::dev;

/// What `wa send` was given.
pub struct SendArgs {
    /// Recipient.
    pub to: Option<String>,
    /// A text message.
    pub text: Option<String>,
    /// A template name.
    pub template: Option<String>,
    /// The template's language.
    pub language: String,
    /// A whole request file.
    pub file: Option<PathBuf>,
    /// The business number.
    pub phone_number_id: String,
    /// The idempotency key.
    pub key: Option<String>,
    /// The pricing category.
    pub category: Option<String>,
    /// A file to send as media (`--document`, `--image`, `--video`, `--audio`), staged by [`media_file`].
    pub media: Option<MediaTarget>,
    /// The media's caption (image, video, document).
    pub caption: Option<String>,
}

/// Where a file to send is stored, as the request names it.
#[derive(Debug, Clone)]
pub struct MediaTarget {
    /// The media kind.
    pub kind: wa_core::media::MediaKind,
    /// `local`, or the S3 bucket.
    pub bucket: String,
    /// `outbound/<sha256>.<ext>`.
    pub key: String,
    /// The file name Meta shows for documents.
    pub filename: String,
}

/// A file staged for sending: where it goes (the local blob store's `local` bucket, or S3), its
/// MIME type and bytes.
pub struct Staged {
    /// Where it goes.
    pub target: MediaTarget,
    /// The MIME type, by the file's extension.
    pub mime: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Reads a file to send as `kind`, checked against Meta's type and size rules before anything is
/// queued; it will be stored in `bucket` (`local` for the local stack).
pub fn media_file(kind: wa_core::media::MediaKind, path: &Path, bucket: &str) -> Result<Staged, String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let filename = path.file_name().map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
    let mime = wa_core::media::object_mime(None, &filename);
    wa_core::media::check_file(kind, &mime, bytes.len() as u64).map_err(|v| format!("{}: {v}", path.display()))?;
    let key = format!("outbound/{}.{}", hex::encode(sha2::Sha256::digest(&bytes)), wa_core::media::extension(&mime));
    Ok(Staged { target: MediaTarget { kind, bucket: bucket.to_owned(), key, filename }, mime, bytes })
}

/// Stores a staged file where its request names it: the local blob store, or S3.
pub async fn stage(staged: &Staged, data_dir: &Path) -> Result<(), String> {
    use wa_core::ports::BlobStore;
    let target = &staged.target;
    if target.bucket == "local" {
        let db = dev::open(data_dir)?;
        return wa_infra_local::LocalBlobs::new(&db)
            .put(&target.key, staged.bytes.clone(), &staged.mime)
            .await
            .map_err(|e| e.to_string());
    }
    wa_infra::aws::s3_client(&wa_infra::aws::load().await)
        .put_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .content_type(&staged.mime)
        .body(staged.bytes.clone().into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("S3 refused the file: {}", wa_infra::aws::describe(&e)))
}

/// The request, checked as the sender checks it; errors say what to change.
pub fn send_request(args: SendArgs) -> Result<Value, String> {
    let mut request = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str::<Value>(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?
        }
        None => {
            let message = match (&args.text, &args.template, &args.media) {
                (Some(text), None, None) => json!({"type": "text", "text": {"body": text}}),
                (None, Some(name), None) => {
                    json!({"type": "template", "template": {"name": name, "language": {"code": args.language}}})
                }
                (None, None, Some(staged)) => {
                    let kind = staged.kind.as_str();
                    let mut media = json!({"s3": {"bucket": staged.bucket, "key": staged.key}});
                    if kind == "document" {
                        media["filename"] = json!(staged.filename);
                    }
                    if let Some(caption) = &args.caption {
                        media["caption"] = json!(caption);
                    }
                    json!({"type": kind, kind: media})
                }
                _ => {
                    return Err("say what to send: --text \"...\", --template NAME, --document/--image/--video/--audio FILE (or --file request.json)".into());
                }
            };
            json!({"phone_number_id": args.phone_number_id, "to": args.to, "message": message})
        }
    };
    let Some(object) = request.as_object_mut() else { return Err("a SendRequest is a JSON object".into()) };
    if let Some(to) = &args.to {
        object.insert("to".into(), json!(to));
    }
    if let Some(category) = &args.category {
        object.insert("category".into(), json!(category));
    }
    if !object.contains_key("idempotency_key") || args.key.is_some() {
        let key = args
            .key
            .clone()
            .unwrap_or_else(|| format!("wa-send-{}-{}", wa_infra::telemetry::now_millis(), std::process::id()));
        object.insert("idempotency_key".into(), json!(key));
    }
    let parsed = SendRequest::from_json(&request.to_string()).map_err(|v| format!("invalid request: {v}"))?;
    parsed.validate().map_err(|v| format!("invalid request: {v}"))?;
    Ok(request)
}

/// Queues `request`; returns what happened, for a person.
pub async fn send(request: &Value, queue_url: Option<&str>, data_dir: &Path) -> Result<String, String> {
    let key = request["idempotency_key"].as_str().unwrap_or_default();
    match queue_url {
        None => {
            let db = dev::open(data_dir)?;
            let queued = dev::enqueue(&dev::Queues::of(&db).outbound, request)?;
            Ok(if queued {
                format!("queued on the local stack ({}): idempotency key {key}", data_dir.display())
            } else {
                format!("already queued in the last five minutes: idempotency key {key}")
            })
        }
        Some(url) => {
            let sqs = aws_sdk_sqs::Client::new(&wa_infra::aws::load().await);
            send_sqs(&sqs, url, request).await
        }
    }
}

/// Puts `request` on a real outbound FIFO queue.
pub async fn send_sqs(sqs: &aws_sdk_sqs::Client, url: &str, request: &Value) -> Result<String, String> {
    let key = request["idempotency_key"].as_str().unwrap_or_default();
    let to = request["to"].as_str().unwrap_or("read");
    let group = format!("{}#{to}", request["phone_number_id"].as_str().unwrap_or_default());
    let out = sqs
        .send_message()
        .queue_url(url)
        // A text with U+FFFE or U+FFFF, which SQS refuses raw, goes as the same JSON with escapes.
        .message_body(wa_core::queue_text::sqs_safe(&request.to_string()))
        .message_group_id(group)
        .message_deduplication_id(dedup_id(key))
        .send()
        .await
        .map_err(|e| format!("SQS refused the message: {}", wa_infra::aws::describe(&e)))?;
    Ok(format!("queued: message {} (idempotency key {key})", out.message_id().unwrap_or("?")))
}

/// Puts up to 10 requests on a real outbound FIFO queue in one `SendMessageBatch`, offering
/// entries SQS fails again (5 attempts); returns how many were put. SQS does not say which were
/// repeats within its deduplication window, so all count.
pub async fn send_sqs_batch(sqs: &aws_sdk_sqs::Client, url: &str, requests: &[Value]) -> Result<usize, String> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let mut pending: Vec<(usize, &Value)> = requests.iter().enumerate().collect();
    for attempt in 0..5u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
        }
        let mut entries = Vec::with_capacity(pending.len());
        for (index, request) in &pending {
            let key = request["idempotency_key"].as_str().unwrap_or_default();
            let group = format!(
                "{}#{}",
                request["phone_number_id"].as_str().unwrap_or_default(),
                request["to"].as_str().unwrap_or("read")
            );
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(format!("r{index}"))
                    .message_body(wa_core::queue_text::sqs_safe(&request.to_string()))
                    .message_group_id(group)
                    .message_deduplication_id(dedup_id(key))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let out = match sqs.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
            Ok(out) => out,
            Err(error) if attempt < 4 => {
                eprintln!("SendMessageBatch failed ({}); again", wa_infra::aws::describe(&error));
                continue;
            }
            Err(error) => return Err(format!("SQS refused the batch: {}", wa_infra::aws::describe(&error))),
        };
        let failed: Vec<String> =
            out.failed().iter().filter(|f| !f.sender_fault()).map(|f| f.id().to_owned()).collect();
        if let Some(refused) = out.failed().iter().find(|f| f.sender_fault()) {
            return Err(format!(
                "SQS refused a request for good: {} {}",
                refused.code(),
                refused.message().unwrap_or_default()
            ));
        }
        pending.retain(|(index, _)| failed.contains(&format!("r{index}")));
        if pending.is_empty() {
            return Ok(requests.len());
        }
    }
    Err(format!("SQS failed {} requests five times", pending.len()))
}

/// SQS deduplication ids are at most 128 characters of a restricted set: long or unusual keys
/// are hashed.
fn dedup_id(key: &str) -> String {
    let plain = key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        key.to_owned()
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SendArgs {
        SendArgs {
            to: Some("16505551234".into()),
            text: Some("hi".into()),
            template: None,
            language: "en_US".into(),
            file: None,
            phone_number_id: "1".into(),
            key: None,
            category: None,
            media: None,
            caption: None,
        }
    }

    #[test]
    fn a_file_is_checked_and_named_by_its_digest() {
        use wa_core::media::MediaKind;
        let dir = std::env::temp_dir().join(format!("wa-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pdf = dir.join("report.pdf");
        std::fs::write(&pdf, b"%PDF-1.4 test").unwrap();
        let staged = media_file(MediaKind::Document, &pdf, "local").unwrap();
        let key = &staged.target.key;
        assert!(key.starts_with("outbound/") && key.ends_with(".pdf"), "{key}");
        let request =
            send_request(SendArgs { text: None, media: Some(staged.target), caption: Some("Lab".into()), ..args() });
        let request = request.unwrap();
        assert_eq!(request["message"]["document"]["filename"], "report.pdf");
        assert_eq!(request["message"]["document"]["s3"]["bucket"], "local");
        let zip = dir.join("data.zip");
        std::fs::write(&zip, b"PK").unwrap();
        let error = media_file(MediaKind::Document, &zip, "local").err().unwrap();
        assert!(error.contains("media.mime_type"), "{error}");
        assert!(media_file(MediaKind::Image, &dir.join("missing.png"), "local").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn requests_are_checked_before_they_are_queued() {
        let request = send_request(args()).unwrap();
        assert_eq!(request["message"]["text"]["body"], "hi");
        assert!(request["idempotency_key"].as_str().unwrap().starts_with("wa-send-"));
        let err = send_request(SendArgs { text: Some("x".repeat(5000)), ..args() }).unwrap_err();
        assert!(err.contains("text.body"), "{err}");
        let err = send_request(SendArgs { text: None, ..args() }).unwrap_err();
        assert!(err.contains("--text"), "{err}");
        let err = send_request(SendArgs { to: Some("not a number".into()), ..args() }).unwrap_err();
        assert!(err.contains("to"), "{err}");
        assert_eq!(dedup_id("abc"), "abc");
        assert_ne!(dedup_id("with space"), "with space");
    }
}
