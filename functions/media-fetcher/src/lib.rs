//! The media fetcher: media queue → Meta's media endpoints → the payload bucket → events queue.
//!
//! The event processor sends inbound media messages (image, audio/voice, video, document,
//! sticker) here instead of to consumers, once their conversation facts are recorded, so that a
//! slow 100 MB download never holds up text messages and runs in a function sized for it. Per
//! event: a dedupe claim (`media:<event_id>`); the file streamed from the webhook's `url` (else a
//! fresh one from `GET /{media-id}`) into an S3 multipart upload in parts of
//! [`FetchConfig::part_bytes`], hashed as it goes, and completed only when its SHA-256 matches the
//! webhook's (otherwise aborted: nothing is ever stored as good with a wrong digest); the object
//! is content-addressed (`media/<number>/<digest>.<ext>`), so redelivered media is stored once.
//! A 404 fetches a fresh URL, a refused token re-reads the secret; attempts are bounded. Then the
//! event goes to the events queue with `"media": {bucket, key, size, sha256, mime_type}` spliced
//! in front, or `"media": {"error": {...}}` when the file cannot be had (expired, 131052, the
//! digest never matches, transient failures past the queue's last receive): never blocked for
//! good, never lost.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use sha2::{Digest, Sha256};
use wa_core::apps::AppRouting;
use wa_core::event::{InboundEvent, claim_check, resolve_event};
use wa_core::media::{InboundMedia, MediaFailure, MediaRef, object_key, splice_media};
use wa_core::ports::{
    BlobStore, Claim, EventQueue, IdempotencyStore, MediaApi, MediaApiError, MediaDownload, MediaStore, MediaUpload,
    SecretSource,
};
use wa_core::queue_text::sqs_safe;
use wa_core::secrets::SecretStage;
use wa_core::webhook::Message;
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "media-fetcher";
/// How long processed event ids are remembered (as the event processor's).
pub const DEDUPE_SECONDS: u64 = 14 * 86_400;

/// Tunables.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Bytes per multipart part (S3: at least 5 MiB but the last): the most of a file held at once.
    pub part_bytes: usize,
    /// Downloads tried per invocation (a fresh URL, a re-read token or a digest mismatch each count).
    pub attempts: u32,
    /// The media queue's receive limit: at this receive, transient failures end the event with
    /// `media.error` instead of retrying (a message is never left for the DLQ).
    pub max_receives: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self { part_bytes: 8 * 1024 * 1024, attempts: 3, max_receives: 5 }
    }
}

/// What the fetcher needs.
pub struct MediaFetcher<G, S, Q, A, I> {
    /// Meta's media endpoints.
    pub graph: G,
    /// The payload bucket: media objects, and claim-checked events.
    pub store: S,
    /// The events queue.
    pub events: Q,
    /// Access tokens by business number.
    pub secrets: A,
    /// Dedupe claims.
    pub dedupe: I,
    /// Tunables.
    pub config: FetchConfig,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why one download attempt failed.
enum Attempt {
    /// Meta's endpoint failed.
    Api(MediaApiError),
    /// The bytes' digest is not the webhook's.
    Mismatch,
    /// The bucket failed.
    Store(String),
}

/// How fetching ended: a reference (or a final error) to forward, or try again later.
enum Fetched {
    Forward(MediaRef),
    RetryLater(String),
}

fn failure(reason: &str, code: Option<i64>, detail: impl Into<String>) -> MediaRef {
    MediaRef {
        bucket: None,
        key: None,
        size: None,
        sha256: None,
        mime_type: None,
        error: Some(MediaFailure { reason: reason.to_owned(), code, detail: detail.into() }),
    }
}

impl<G, S, Q, A, I> MediaFetcher<G, S, Q, A, I>
where
    G: MediaApi,
    S: MediaStore + BlobStore,
    Q: EventQueue,
    A: AppRouting,
    I: IdempotencyStore,
{
    /// Handles one SQS batch, one record at a time (a record holds at most one part in memory).
    pub async fn handle(&self, event: &SqsEvent, deadline_ms: u64) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            if !self.process(record, deadline_ms).await
                && let Some(id) = record.message_id.as_deref().filter(|id| !id.is_empty())
            {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// True when the record is done.
    async fn process(&self, record: &SqsMessage, deadline_ms: u64) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let receives: u32 = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        let full = match resolve_event(&self.store, body).await {
            Ok(full) => full,
            Err(error) => {
                tracing::error!(%error, "cannot read a media event; retrying");
                return false;
            }
        };
        let event: InboundEvent<'_> = match serde_json::from_str(&full) {
            Ok(event) => event,
            Err(error) => {
                // Not an event at all: forwarded as it came, so that nothing is lost.
                tracing::error!(%error, "not an inbound event on the media queue; forwarding it unchanged");
                return self.events.publish(&[body.to_owned()]).await.is_ok();
            }
        };
        let key = format!("media:{}", event.event_id);
        match self.dedupe.claim(&key, now_ms(), deadline_ms).await {
            Ok(Claim::Acquired | Claim::Reclaimed) => {}
            Ok(Claim::Completed { published: true, .. }) => return true,
            Ok(Claim::Completed { outcome, published: false, owner_until_ms }) => {
                if now_ms() <= owner_until_ms {
                    return false;
                }
                return match serde_json::from_str::<MediaRef>(&outcome) {
                    Ok(reference) => self.forward(&key, &event, body, &reference).await,
                    Err(_) => false,
                };
            }
            Ok(Claim::InProgress) => return false,
            Err(error) => {
                tracing::warn!(%error, "cannot claim the media event; retrying");
                return false;
            }
        }
        let reference = match self.fetch(&event, receives).await {
            Fetched::Forward(reference) => reference,
            Fetched::RetryLater(reason) => {
                tracing::warn!(%reason, receives, "media not stored yet; retrying later");
                let _ = self.dedupe.release(&key).await;
                return false;
            }
        };
        let Ok(stored) = serde_json::to_string(&reference) else { return false };
        if let Err(error) = self.dedupe.complete(&key, &stored, None, None, now_ms() / 1000 + DEDUPE_SECONDS).await {
            tracing::warn!(%error, "cannot record the stored media; retrying");
            return false;
        }
        self.forward(&key, &event, body, &reference).await
    }

    /// The event with its media reference on the events queue (claim-checked when too large).
    async fn forward(&self, key: &str, event: &InboundEvent<'_>, body: &str, reference: &MediaRef) -> bool {
        let mut message = splice_media(body, reference);
        if sqs_safe(&message).len() > self.events.max_message_bytes() {
            match claim_check(&self.store, event, message).await {
                Ok(pointer) => message = splice_media(&pointer, reference),
                Err(error) => {
                    tracing::warn!(%error, "cannot claim-check a media event; retrying");
                    return false;
                }
            }
        }
        if let Err(error) = self.events.publish(&[message]).await {
            tracing::warn!(%error, "cannot forward the media event; retrying");
            return false;
        }
        if let Err(error) = self.dedupe.mark_published(key).await {
            tracing::warn!(%error, "media event forwarded but not marked; a redelivery may forward it again");
        }
        let outcome = if reference.error.is_some() { "error" } else { "stored" };
        telemetry::emit(FUNCTION, Some(("Outcome", outcome)), &[("MediaEvents", 1.0)]);
        true
    }

    /// The file of a media event into the bucket, or why not.
    async fn fetch(&self, event: &InboundEvent<'_>, receives: u32) -> Fetched {
        let last_receive = receives >= self.config.max_receives;
        let message: Message = match event.payload_as() {
            Ok(message) => message,
            Err(error) => return Fetched::Forward(failure("uninterpretable", None, error.to_string())),
        };
        let Some(media) = InboundMedia::of(&message) else {
            return Fetched::Forward(failure("not_media", None, "the message has no media"));
        };
        if let Some(code) = media.error {
            return Fetched::Forward(failure("meta_error", Some(code), wa_core::graph_error::meaning(code)));
        }
        let (Some(phone), Some(id)) = (event.phone_number_id.as_deref(), media.id.as_deref()) else {
            return Fetched::Forward(failure("no_media_id", None, "the message names no media id or business number"));
        };
        let mime = media.mime_type.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
        let key = object_key(phone, media.digest.as_ref(), id, &mime);
        let reference = |size: u64, digest: [u8; 32]| MediaRef {
            bucket: Some(self.store.media_bucket().to_owned()),
            key: Some(key.clone()),
            size: Some(size),
            sha256: Some(hex::encode(digest)),
            mime_type: Some(mime.clone()),
            error: None,
        };
        // Stored before (a redelivery, or the same file sent again): content-addressed, so done.
        if let Some(digest) = media.digest {
            match self.store.stored_size(&key).await {
                Ok(Some(size)) => {
                    telemetry::emit(FUNCTION, None, &[("MediaAlreadyStored", 1.0)]);
                    return Fetched::Forward(reference(size, digest));
                }
                Ok(None) => {}
                Err(error) if last_receive => {
                    return Fetched::Forward(failure("too_many_attempts", None, error.to_string()));
                }
                Err(error) => return Fetched::RetryLater(error.to_string()),
            }
        }
        let source = self.secrets.for_number(phone);
        let mut token = match source.get(SecretStage::Current).await {
            Ok(Some(secret)) => secret.phone_number_tokens.get(phone).unwrap_or(&secret.access_token).clone(),
            Ok(None) | Err(_) if last_receive => {
                return Fetched::Forward(failure("too_many_attempts", None, "no access token"));
            }
            Ok(None) => return Fetched::RetryLater("the secret has no AWSCURRENT version".into()),
            Err(error) => return Fetched::RetryLater(error.to_string()),
        };
        let mut url = media.url.clone();
        let mut last = String::new();
        let mut mismatches = 0;
        for _ in 0..self.config.attempts {
            let target = match url.take() {
                Some(url) => url,
                None => match self.graph.media_info(id, phone, &token).await {
                    Ok(info) => info.url,
                    Err(MediaApiError::NotFound) => {
                        return Fetched::Forward(failure("expired", None, "Meta no longer has this media"));
                    }
                    Err(MediaApiError::Meta { code, message }) if code != 4 && code != 2 => {
                        return Fetched::Forward(failure("meta_error", Some(code), message));
                    }
                    Err(MediaApiError::Unauthorized(code)) => {
                        last = format!("token refused ({code})");
                        token = self.refreshed_token(phone).await.unwrap_or(token);
                        continue;
                    }
                    Err(error) => {
                        last = error.to_string();
                        break;
                    }
                },
            };
            match self.stream(&target, &token, &key, &mime, media.digest, event.user_id.as_deref()).await {
                Ok((size, digest)) => {
                    telemetry::emit(FUNCTION, None, &[("MediaBytes", size as f64)]);
                    return Fetched::Forward(reference(size, digest));
                }
                // An expired URL: a fresh one next time round.
                Err(Attempt::Api(MediaApiError::NotFound)) => last = "the download URL expired".into(),
                Err(Attempt::Api(MediaApiError::Unauthorized(code))) => {
                    last = format!("token refused ({code})");
                    token = self.refreshed_token(phone).await.unwrap_or(token);
                    url = Some(target);
                }
                Err(Attempt::Mismatch) => {
                    mismatches += 1;
                    telemetry::emit(FUNCTION, None, &[("MediaDigestMismatches", 1.0)]);
                    last = "the bytes' SHA-256 is not the webhook's".into();
                }
                Err(Attempt::Api(error)) => {
                    last = error.to_string();
                    break;
                }
                Err(Attempt::Store(error)) => {
                    last = error;
                    break;
                }
            }
        }
        if mismatches >= self.config.attempts {
            return Fetched::Forward(failure("digest_mismatch", None, last));
        }
        if last_receive || mismatches > 0 {
            Fetched::Forward(failure("too_many_attempts", None, last))
        } else {
            Fetched::RetryLater(last)
        }
    }

    async fn refreshed_token(&self, phone: &str) -> Option<String> {
        let secret = self.secrets.for_number(phone).refresh(SecretStage::Current).await.ok()??;
        Some(secret.phone_number_tokens.get(phone).unwrap_or(&secret.access_token).clone())
    }

    /// One download into one multipart upload, hashed as it goes; completed only when the digest
    /// is the expected one.
    async fn stream(
        &self,
        url: &str,
        token: &str,
        key: &str,
        mime: &str,
        expected: Option<[u8; 32]>,
        owner: Option<&str>,
    ) -> Result<(u64, [u8; 32]), Attempt> {
        let mut download = self.graph.download(url, token).await.map_err(Attempt::Api)?;
        let mut upload = self.store.begin(key, mime, owner).await.map_err(|e| Attempt::Store(e.to_string()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut part = Vec::with_capacity(self.config.part_bytes);
        let result = loop {
            match download.next_chunk().await {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    part.extend_from_slice(&chunk);
                    if part.len() >= self.config.part_bytes {
                        let full = std::mem::replace(&mut part, Vec::with_capacity(self.config.part_bytes));
                        if let Err(error) = upload.part(full).await {
                            break Err(Attempt::Store(error.to_string()));
                        }
                    }
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(Attempt::Api(error)),
            }
        };
        let digest: [u8; 32] = hasher.finalize().into();
        let result =
            result.and_then(|()| if expected.is_some_and(|e| e != digest) { Err(Attempt::Mismatch) } else { Ok(()) });
        if let Err(error) = result {
            let _ = upload.abort().await;
            return Err(error);
        }
        // The last part (S3 takes one part of any size, and a last part under 5 MiB).
        if let Err(error) = upload.part(part).await {
            let _ = upload.abort().await;
            return Err(Attempt::Store(error.to_string()));
        }
        upload.complete().await.map_err(|e| Attempt::Store(e.to_string()))?;
        Ok((size, digest))
    }
}
