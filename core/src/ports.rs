//! Traits for the outside world. `infra` implements them over AWS; tests and the local stack use
//! the same implementations against moto server or embedded stores.

use std::future::Future;
use std::sync::Arc;

use thiserror::Error;

use crate::secrets::{AppSecrets, SecretStage};

/// A queue failure. `Display` never includes message bodies.
#[derive(Debug, Error)]
pub enum QueueError {
    /// Some entries were still refused after all retries.
    #[error("{failed} of {total} messages not accepted by the queue after {attempts} attempts: {reason}")]
    Rejected {
        /// How many were refused.
        failed: usize,
        /// How many were offered.
        total: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last error code(s).
        reason: String,
    },
    /// Some messages were refused as the sender's fault (their contents or attributes): offering
    /// them again cannot help, so they were not.
    #[error("{failed} of {total} messages refused by the queue for good: {reason}")]
    Refused {
        /// How many were refused (or not accepted for another reason, in the same call).
        failed: usize,
        /// How many were offered.
        total: usize,
        /// The error code(s).
        reason: String,
    },
    /// The queue could not be reached or answered with an error.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// A message is larger than the queue accepts.
    #[error("message of {size} bytes exceeds the queue limit of {limit} bytes")]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The outcome of a publish made of several calls, from each call's size and result: `Ok` when
/// all succeeded; a refusal for good decides (retrying the whole publish cannot succeed);
/// `Unavailable` when every call failed that way; otherwise `Rejected` with the count of messages
/// not accepted (`attempts`: how many times the publisher offered each).
pub fn combine_calls(
    calls: impl IntoIterator<Item = (usize, Result<(), QueueError>)>,
    total: usize,
    attempts: u32,
) -> Result<(), QueueError> {
    let mut failed = 0;
    let mut first_error = None;
    let mut refusal = None;
    for (size, result) in calls {
        if let Err(e) = result {
            failed += match &e {
                QueueError::Rejected { failed, .. } | QueueError::Refused { failed, .. } => *failed,
                _ => size,
            };
            if let QueueError::Refused { reason, .. } = &e {
                refusal.get_or_insert_with(|| reason.clone());
            }
            first_error.get_or_insert(e);
        }
    }
    if let Some(reason) = refusal {
        return Err(QueueError::Refused { failed, total, reason });
    }
    match first_error {
        None => Ok(()),
        Some(QueueError::Unavailable(reason)) if failed == total => Err(QueueError::Unavailable(reason)),
        Some(e) => Err(QueueError::Rejected { failed, total, attempts, reason: e.to_string() }),
    }
}

/// Publishes messages durably: `Ok` only when the queue accepted every one of them.
pub trait EventQueue: Send + Sync {
    /// The largest message body the queue accepts, in bytes.
    fn max_message_bytes(&self) -> usize;

    /// Publishes all bodies (in batches as the queue allows); `Ok` means every one was accepted.
    fn publish(&self, bodies: &[String]) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Publishes several groups of bodies (each group one caller's: an event and what goes with
    /// it), with one answer per group, in order: `Ok` when the queue accepted each of that group's
    /// bodies. A queue that can put several groups in one call overrides this (SQS: ten messages
    /// a request, whoever they belong to); by default each group is one [`publish`](Self::publish).
    fn publish_groups(&self, groups: &[Vec<String>]) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(groups.len());
            for group in groups {
                results.push(self.publish(group).await);
            }
            results
        }
    }
}

/// A blob store failure.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The store could not be reached or refused the request.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    /// No object under that key.
    #[error("no object {0}")]
    NotFound(String),
}

/// Durable storage for parked bodies and claim-checked events.
pub trait BlobStore: Send + Sync {
    /// The bucket (or equivalent) name, for references.
    fn bucket(&self) -> &str;

    /// Stores `body` under `key` (overwriting is harmless: keys are content-addressed).
    fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Reads the object under `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, BlobError>> + Send;

    /// Restarts the lifecycle clock of the object under `key`, as if it had just been put (a
    /// redriven message's payload must outlive the message); `NotFound` when it is gone.
    fn renew(&self, key: &str) -> impl Future<Output = Result<(), BlobError>> + Send;
}

/// A secret store failure. Never includes a secret value.
#[derive(Debug, Clone, Error)]
pub enum SecretError {
    /// The store could not be reached and no earlier value is known.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The secret exists but its JSON is not usable.
    #[error("secret is malformed: {0}")]
    Malformed(String),
}

/// The app credentials by version stage, cached by implementations.
pub trait SecretSource: Send + Sync {
    /// The value at `stage`; `Ok(None)` when no version carries that stage.
    fn get(&self, stage: SecretStage) -> impl Future<Output = Result<Option<Arc<AppSecrets>>, SecretError>> + Send;

    /// Like `get`, but bypasses the cache when it was not refreshed recently (rate-limited), for
    /// when a signature or token suggests the cached value is stale.
    fn refresh(&self, stage: SecretStage) -> impl Future<Output = Result<Option<Arc<AppSecrets>>, SecretError>> + Send;
}

/// Meta accepted a send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphAccepted {
    /// The wamid (absent for read receipts).
    pub wamid: Option<String>,
    /// `messages[0].message_status`, when given.
    pub message_status: Option<String>,
    /// `contacts[]`: `input`, `wa_id` and `user_id` of the recipient (the ids Meta links).
    pub contacts: Vec<serde_json::Value>,
}

/// A send that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphFailure {
    /// Meta answered with an error object.
    #[error("graph error {} (HTTP {http_status}): {}", error.code, error.message)]
    Api {
        /// The HTTP status.
        http_status: u16,
        /// Meta's error.
        error: Box<crate::graph_error::GraphErrorBody>,
    },
    /// The request may have reached Meta (timeout, 5xx without an error object, connection lost
    /// after sending): retrying may send the message twice.
    #[error("ambiguous: {0}")]
    Ambiguous(String),
    /// The request certainly did not reach Meta (connection refused, DNS), or was answered with a
    /// redirect (never followed): nothing was sent, a retry cannot duplicate it.
    #[error("unreachable: {0}")]
    Unreachable(String),
}

/// The Graph API `/{phone_number_id}/messages` and `/{phone_number_id}/media` endpoints.
pub trait GraphApi: Send + Sync {
    /// Posts `body` as the business number with `token`.
    fn send_message(
        &self,
        phone_number_id: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> impl Future<Output = Result<GraphAccepted, GraphFailure>> + Send;

    /// Uploads a file for the business number (`POST /{phone-number-id}/media`, multipart);
    /// returns Meta's media id (kept 30 days).
    fn upload_media(
        &self,
        phone_number_id: &str,
        token: &str,
        mime_type: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<String, GraphFailure>> + Send;
}

/// What an object store says about an object a producer names for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Bytes.
    pub size: u64,
    /// Its `Content-Type`, when stored with one.
    pub content_type: Option<String>,
    /// Its version tag (S3 ETag): changes whenever the content does.
    pub etag: Option<String>,
}

/// Objects producers name in send requests (`{"s3": {"bucket", "key"}}`), read by the sender.
pub trait ObjectSource: Send + Sync {
    /// The object's size, type and tag; `None` when there is no such object.
    fn head(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<ObjectMeta>, BlobError>> + Send;

    /// The object's bytes.
    fn read(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, BlobError>> + Send;
}

/// Media ids of uploaded files, per (business number, object digest), shared by all senders so
/// that one file sent to many people is uploaded once.
pub trait MediaIdCache: Send + Sync {
    /// The cached id, when one is younger than its expiry.
    fn media_id(
        &self,
        phone_number_id: &str,
        digest: &str,
        now_s: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Claims the upload until `until_ms`; false when another sender holds an unexpired claim.
    fn claim_upload(
        &self,
        phone_number_id: &str,
        digest: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives up a claim (the upload failed): another sender may try at once.
    fn release_upload(
        &self,
        phone_number_id: &str,
        digest: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the uploaded id until `expires_at_s` (less than Meta's 30 days).
    fn put_media_id(
        &self,
        phone_number_id: &str,
        digest: &str,
        media_id: &str,
        expires_at_s: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A failure of Meta's media endpoints (`GET /{media-id}`, the download URL). Never includes a
/// token or a URL's query.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaApiError {
    /// 404: the URL expired (5 minutes), or Meta no longer has the media.
    #[error("not found: the URL expired or the media is gone")]
    NotFound,
    /// The access token was refused (190 / 401).
    #[error("the access token was refused (code {0})")]
    Unauthorized(i64),
    /// Meta answered with an error object.
    #[error("Meta refused: code {code}: {message}")]
    Meta {
        /// Meta's code.
        code: i64,
        /// Meta's message.
        message: String,
    },
    /// No usable answer (connection, timeout, 5xx): a later attempt may succeed.
    #[error("transient: {0}")]
    Transient(String),
}

/// `GET /{media-id}`: where to download a file, valid 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaInfo {
    /// The download URL (fetched with the access token).
    pub url: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Meta's digest (base64).
    pub sha256: Option<String>,
    /// Bytes (Meta sends a string, some libraries a number: both are read).
    pub file_size: Option<u64>,
}

/// A download in progress, read chunk by chunk (a file is never held whole).
pub trait MediaDownload: Send {
    /// The next chunk; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, MediaApiError>> + Send;
}

/// Meta's media endpoints.
pub trait MediaApi: Send + Sync {
    /// A download.
    type Download: MediaDownload;

    /// `GET /{media-id}?phone_number_id=…`: a fresh download URL.
    fn media_info(
        &self,
        media_id: &str,
        phone_number_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<MediaInfo, MediaApiError>> + Send;

    /// `GET <url>` with the bearer token, streamed.
    fn download(&self, url: &str, token: &str) -> impl Future<Output = Result<Self::Download, MediaApiError>> + Send;
}

/// An object being written in parts (S3 multipart upload): visible only once completed.
pub trait MediaUpload: Send {
    /// Appends a part (all but the last at least 5 MiB).
    fn part(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), BlobError>> + Send;
    /// Makes the object visible.
    fn complete(self) -> impl Future<Output = Result<(), BlobError>> + Send;
    /// Drops what was written; nothing becomes visible.
    fn abort(self) -> impl Future<Output = Result<(), BlobError>> + Send;
}

/// Where inbound media is stored (the payload bucket, under `media/`).
pub trait MediaStore: Send + Sync {
    /// An upload in progress.
    type Upload: MediaUpload;

    /// The bucket, for references.
    fn media_bucket(&self) -> &str;

    /// The size of the object under `key`, when there is one.
    fn stored_size(&self, key: &str) -> impl Future<Output = Result<Option<u64>, BlobError>> + Send;

    /// Starts writing `key`, a file `owner` (a user id) sent: the owner is kept with the object so
    /// that `wa erase` can find a person's files.
    fn begin(
        &self,
        key: &str,
        content_type: &str,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<Self::Upload, BlobError>> + Send;
}

/// A state store failure.
#[derive(Debug, Clone, Error)]
#[error("state store unavailable: {0}")]
pub struct StoreError(pub String);

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the request until the claim expires.
    Acquired,
    /// The caller owns the request, taken over from an earlier attempt that claimed it and never
    /// finished (a crash, a timeout, an ambiguous send): that attempt may have reached Meta.
    Reclaimed,
    /// Another attempt is in flight (its claim has not expired).
    InProgress,
    /// Done before: the stored outcome (JSON), and whether it was already published.
    Completed {
        /// The outcome event.
        outcome: String,
        /// Whether the outcome reached the events queue.
        published: bool,
        /// Until when the attempt that completed it may still be publishing (Unix ms).
        owner_until_ms: u64,
    },
}

impl Claim {
    /// The caller owns the request (a new claim or one taken over).
    #[must_use]
    pub fn owned(&self) -> bool {
        matches!(self, Self::Acquired | Self::Reclaimed)
    }
}

/// Idempotency records: a conditional claim, then the completed outcome.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` until `in_progress_until_ms`; succeeds when the key is new, its claim expired,
    /// or its record is past its TTL.
    fn claim(
        &self,
        key: &str,
        now_ms: u64,
        in_progress_until_ms: u64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records the outcome (unpublished); the record lives until `expires_at_s`. `wamid`, when
    /// Meta accepted the message, links the message back to this record; `request`, the request
    /// itself (JSON), is kept with it when the fallback function may need it.
    fn complete(
        &self,
        key: &str,
        outcome: &str,
        wamid: Option<&str>,
        request: Option<&str>,
        expires_at_s: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The request kept with a completed record (`None`: no record, or none kept).
    fn stored_request(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Marks the outcome published.
    fn mark_published(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the outcome as completed and published in one write (for a claim whose outcome
    /// was published before it was recorded: a redelivery after a crash in between finds the
    /// claim expired, does the work again and publishes again).
    fn complete_published(
        &self,
        key: &str,
        outcome: &str,
        expires_at_s: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops a claim so that a retry can proceed at once (only when nothing was sent).
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Shared rate-limit state: per-number send slots and per-recipient pair-rate backoff.
pub trait ThrottleStore: Send + Sync {
    /// Reserves `count` send slots `interval_us` apart for the number (see [`crate::ratelimit::reserve`]).
    fn reserve(
        &self,
        phone_number_id: &str,
        count: u32,
        interval_us: u64,
        now_us: u64,
        horizon_us: u64,
    ) -> impl Future<Output = Result<Option<crate::ratelimit::Reservation>, StoreError>> + Send;

    /// Records a pair-rate hit (131056) for the recipient and returns how many consecutive hits it
    /// has had (1 for the first; the count restarts when the last hit is older than 15 minutes).
    /// The FIFO group of the recipient is what holds its later messages back meanwhile.
    fn pair_hit(
        &self,
        phone_number_id: &str,
        to: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

/// Holds on business numbers after account-level errors ([`crate::hold`]), shared by all senders.
pub trait HoldStore: Send + Sync {
    /// The number's hold, if any.
    fn hold(&self, phone_number_id: &str)
    -> impl Future<Output = Result<Option<crate::hold::Hold>, StoreError>> + Send;

    /// Stores `hold` (replacing any), the next after `previous_strikes` (0 for a new one): written
    /// only if the stored hold still has that many strikes, so that two senders' errors count once.
    fn put_hold(
        &self,
        phone_number_id: &str,
        hold: &crate::hold::Hold,
        previous_strikes: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims the probe after the cool-down until `probe_until_ms`; true for the one sender that
    /// gets it.
    fn claim_probe(
        &self,
        phone_number_id: &str,
        now_ms: u64,
        probe_until_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the number's hold (a probe went through, or an operator cleared it).
    fn clear_hold(&self, phone_number_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Delays the redelivery of a queue message that will be retried (SQS ChangeMessageVisibility),
/// so that throttling and pair-rate backoff do not burn its receive count.
pub trait Redelivery: Send + Sync {
    /// The message comes back after `seconds` (0–43200).
    fn delay(&self, receipt_handle: &str, seconds: u32) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Conversation facts kept by the event processor (see [`crate::conversation`] for the rules).
pub trait ConversationStore: Send + Sync {
    /// A user wrote at `at_s`: the service window moves forward (never back).
    fn record_inbound(
        &self,
        phone_number_id: &str,
        user_id: &str,
        at_s: i64,
        profile_name: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The username a user shows (`contacts[].profile.username`, e.g. `@sheena`), kept for display.
    fn record_username(
        &self,
        phone_number_id: &str,
        user_id: &str,
        username: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A consent change at `at_s`; only a newer change applies. Returns whether it applied.
    fn set_marketing_opt_out(
        &self,
        phone_number_id: &str,
        user_id: &str,
        opted_out: bool,
        at_s: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A status of a message we sent; only a forward move applies (its pricing is kept whatever
    /// the order). Returns whether it applied, and whether the message is in the cost ledger
    /// already. One write when statuses come in order.
    fn apply_status(
        &self,
        update: &crate::conversation::StatusUpdate<'_>,
    ) -> impl Future<Output = Result<StatusApplied, StoreError>> + Send;

    /// The stored records of `ids` (each id's own record with its links; ids never seen are
    /// absent). [`crate::identity::resolve`] follows the links and merges them into one person.
    fn records(
        &self,
        phone_number_id: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::identity::ConversationRecord>, StoreError>> + Send;

    /// Records that `ids` belong to one person: each id's record lists the others (idempotent,
    /// order-independent).
    fn link(&self, phone_number_id: &str, ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every link of `id`, both ways, and marks it retired at `at_s` (a phone number its
    /// owner gave up): it no longer reaches anyone else's record.
    fn detach(&self, phone_number_id: &str, id: &str, at_s: i64)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored status of a message we sent (`sent`, `failed`, ...), read consistently.
    fn status_of(&self, wamid: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The idempotency key of the send request that produced `wamid`, when it went through this
    /// pipeline.
    fn send_key_of(&self, wamid: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// A free-entry-point window (72 h) runs until `until_s`.
    fn record_free_entry_point(
        &self,
        phone_number_id: &str,
        user_id: &str,
        until_s: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Meta refused a free-form message with 131047 at `at_s`: the window is closed.
    fn mark_window_closed(
        &self,
        phone_number_id: &str,
        user_id: &str,
        at_s: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a template's pricing category (lowercase), learned from template webhooks.
    fn record_template_category(
        &self,
        name: &str,
        language: &str,
        category: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A template's category, when a template webhook told it.
    fn template_category(
        &self,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records what is known of a template (only the fields given are written): the template
    /// registry, kept from the template webhooks, `wa templates pull` and Meta's send errors.
    fn record_template(
        &self,
        name: &str,
        language: &str,
        update: &crate::templates::TemplateUpdate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What the registry knows of a template (`None`: never seen).
    fn template(
        &self,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<crate::templates::TemplateFacts>, StoreError>> + Send;

    /// Counts an applied status in the month's statistics of the number.
    fn count_status(
        &self,
        phone_number_id: &str,
        month: &str,
        status: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts a billable message in the month's ledger, once per wamid: the wamid's mark and the
    /// counter change in one atomic write (a crash between two writes would undercount for good).
    fn count_cost_once(
        &self,
        wamid: &str,
        phone_number_id: &str,
        month: &str,
        category: &str,
        pricing_type: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A failure of Meta's token or subscription endpoints. Never includes a token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    /// Meta answered with an error.
    #[error("Meta refused: code {code}: {message}")]
    Meta {
        /// Meta's code.
        code: i64,
        /// Meta's message.
        message: String,
    },
    /// No usable answer (connection, timeout, 5xx, unparsable body).
    #[error("Meta unreachable: {0}")]
    Unreachable(String),
}

/// A new long-lived token from `oauth/access_token`.
#[derive(Clone, PartialEq, Eq)]
pub struct ExchangedToken {
    /// The token.
    pub access_token: String,
    /// Its life in seconds, when Meta says.
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Meta's token and webhook-subscription endpoints, used by the rotation and the watchdog. `app`
/// is the app's credentials (`app_id`, `app_secret`).
pub trait MetaAdmin: Send + Sync {
    /// `GET /oauth/access_token?grant_type=fb_exchange_token`, asking for a 60-day system-user token.
    fn exchange_token(
        &self,
        app: &AppSecrets,
        token: &str,
    ) -> impl Future<Output = Result<ExchangedToken, AdminError>> + Send;

    /// `GET /debug_token?input_token=…` with the app access token.
    fn debug_token(
        &self,
        app: &AppSecrets,
        token: &str,
    ) -> impl Future<Output = Result<crate::rotation::TokenDebug, AdminError>> + Send;

    /// The callback URL of the app's `whatsapp_business_account` subscription, if any
    /// (`GET /{app-id}/subscriptions`).
    fn callback_url(&self, app: &AppSecrets) -> impl Future<Output = Result<Option<String>, AdminError>> + Send;

    /// `POST /{app-id}/subscriptions` for `whatsapp_business_account` with `callback_url` and
    /// `verify_token`; Meta verifies the callback before it answers.
    fn subscribe(
        &self,
        app: &AppSecrets,
        callback_url: &str,
        verify_token: &str,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
}

/// A Secrets Manager failure during a rotation. Never includes a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("secret store: {0}")]
pub struct VaultError(pub String);

/// The secret's versions and their stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versions {
    /// (version id, stages).
    pub versions: Vec<(String, Vec<String>)>,
}

impl Versions {
    /// The version carrying `stage`.
    #[must_use]
    pub fn with_stage(&self, stage: SecretStage) -> Option<&str> {
        self.versions.iter().find(|(_, stages)| stages.iter().any(|s| s == stage.as_aws())).map(|(id, _)| id.as_str())
    }

    /// The stages of `version`, when it exists.
    #[must_use]
    pub fn stages_of(&self, version: &str) -> Option<&[String]> {
        self.versions.iter().find(|(id, _)| id == version).map(|(_, stages)| stages.as_slice())
    }
}

/// The secret store as a rotation sees it: versions, values by version, stage moves.
pub trait SecretVault: Send + Sync {
    /// The versions of `secret_id` and their stages.
    fn versions(&self, secret_id: &str) -> impl Future<Output = Result<Versions, VaultError>> + Send;

    /// The value of `version` (when given) at `stage`; `None` when there is none (or it has no value yet).
    fn value(
        &self,
        secret_id: &str,
        version: Option<&str>,
        stage: SecretStage,
    ) -> impl Future<Output = Result<Option<String>, VaultError>> + Send;

    /// Stores `value` as version `version` with stage AWSPENDING (idempotent for the same value).
    fn put_pending(
        &self,
        secret_id: &str,
        version: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), VaultError>> + Send;

    /// Moves `stage` to version `to` (when given) from version `from` (when given).
    fn move_stage(
        &self,
        secret_id: &str,
        stage: SecretStage,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), VaultError>> + Send;

    /// Asks Secrets Manager to rotate now (it invokes the rotation function).
    fn start_rotation(&self, secret_id: &str) -> impl Future<Output = Result<(), VaultError>> + Send;
}

/// Why a fallback SMS or e-mail was not sent.
#[derive(Debug, Clone, Error)]
pub enum NotifyError {
    /// The provider refused this message (an invalid number or address, an unverified sender,
    /// a recipient who opted out of SMS): a retry fails the same way.
    #[error("refused: {0}")]
    Refused(String),
    /// Nothing was sent (throttling, the provider unreachable): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider may have sent it (a timeout or server error after the request went out).
    #[error("ambiguous: {0}")]
    Ambiguous(String),
}

/// Sends fallback SMS and e-mails; `Ok` is the provider's message id.
pub trait Notifier: Send + Sync {
    /// Sends one SMS.
    fn send_sms(&self, sms: &crate::fallback::Sms) -> impl Future<Output = Result<String, NotifyError>> + Send;

    /// Sends one e-mail.
    fn send_email(&self, email: &crate::fallback::Email) -> impl Future<Output = Result<String, NotifyError>> + Send;
}

/// Campaign bookkeeping: what `wa campaign send` queued and suppressed per variant, and the send
/// records of a campaign's requests (keys `c:<campaign>:…`, [`crate::campaign::key`]).
pub trait CampaignStore: Send + Sync {
    /// Sets a variant's counters: the requests of the campaign's audience queued for it, and the
    /// recipients suppressed (a re-run of the same campaign sets the same numbers).
    fn record_campaign(
        &self,
        campaign: &str,
        variant: &str,
        queued: u64,
        suppressed: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every variant's counters: (variant, queued, suppressed).
    fn campaign_counts(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<(String, u64, u64)>, StoreError>> + Send;

    /// The campaign's send records: (idempotency key, the outcome JSON once there is one).
    fn campaign_sends(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<(String, Option<String>)>, StoreError>> + Send;
}

/// What applying a status did ([`ConversationStore::apply_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusApplied {
    /// The status moved the message forward.
    pub advanced: bool,
    /// The message was counted in the cost ledger already (the ledger's write can be skipped).
    pub costed: bool,
}

/// What the sender reads of Meta's limits once per batch ([`LimitStore::limit_facts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitFacts {
    /// Send rates learned from `THROUGHPUT_UPGRADE`, by phone number id.
    pub rates: std::collections::HashMap<String, u32>,
    /// The portfolios' messaging-limit windows.
    pub windows: std::collections::HashMap<String, crate::limit::Window>,
}

/// Meta's messaging limit and throughput upgrades, shared by every sender ([`crate::limit`]).
pub trait LimitStore: Send + Sync {
    /// The learned rates of `numbers` and the windows of `portfolios`, in one read.
    fn limit_facts(
        &self,
        numbers: &[&str],
        portfolios: &[&str],
    ) -> impl Future<Output = Result<LimitFacts, StoreError>> + Send;

    /// Counts `user` in the portfolio's window under the conditions of `count`, atomically with
    /// the user's own record ([`crate::limit::Count`]).
    fn count_user(
        &self,
        portfolio: &str,
        user: &str,
        count: &crate::limit::Count,
    ) -> impl Future<Output = Result<crate::limit::Counted, StoreError>> + Send;

    /// When the user was last counted in the portfolio's window (Unix seconds).
    fn reached_at(&self, portfolio: &str, user: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Records the tier Meta announced for the portfolio.
    fn record_tier(
        &self,
        portfolio: &str,
        tier: crate::limit::Tier,
        at_s: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records what is known of a business number by its display number: its phone number id
    /// (seen in webhooks' metadata) and/or its upgraded rate (`THROUGHPUT_UPGRADE`, which names
    /// the display number only). Once both are known, the rate is the number's, whichever came
    /// first.
    fn record_number(
        &self,
        display_phone_number: &str,
        phone_number_id: Option<&str>,
        upgraded_rate: Option<u32>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_combine_into_one_answer() {
        let unavailable = || Err(QueueError::Unavailable("down".into()));
        let rejected = |failed| Err(QueueError::Rejected { failed, total: 10, attempts: 4, reason: "x".into() });
        let refused = || Err(QueueError::Refused { failed: 1, total: 10, reason: "bad".into() });
        assert!(combine_calls([(10, Ok(())), (5, Ok(()))], 15, 4).is_ok());
        assert!(matches!(
            combine_calls([(10, unavailable()), (5, unavailable())], 15, 4),
            Err(QueueError::Unavailable(_))
        ));
        assert!(matches!(
            combine_calls([(10, unavailable()), (5, Ok(()))], 15, 4),
            Err(QueueError::Rejected { failed: 10, total: 15, attempts: 4, .. })
        ));
        assert!(matches!(
            combine_calls([(10, rejected(2)), (5, unavailable())], 15, 4),
            Err(QueueError::Rejected { failed: 7, total: 15, .. })
        ));
        assert!(
            matches!(
                combine_calls([(10, rejected(2)), (5, refused())], 15, 4),
                Err(QueueError::Refused { failed: 3, total: 15, .. })
            ),
            "a refusal decides"
        );
    }
}
