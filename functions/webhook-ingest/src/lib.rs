//! `POST /webhook`: verify, split, enqueue, and only then acknowledge.
//!
//! 1. `X-Hub-Signature-256` is checked over the exact bytes received (API Gateway base64 bodies are
//!    decoded first) against the current app secret, then the previous one. Missing, malformed or
//!    wrong → 401, nothing enqueued, nothing of the body logged.
//! 2. The body is split into one event per message, status, error and other change.
//! 3. Events go to the inbound queue with `SendMessageBatch` (≤ 10 per call); an event larger than a
//!    queue message is stored whole in S3 and a reference is queued instead (claim-check).
//! 4. 200 only when the queue accepted every event; otherwise 503, so that Meta redelivers.
//!
//! Events older than the acceptance window (8 days by default: more than Meta's 7 days of
//! retries) are a replay of a captured request, which the signature cannot tell: they are dropped,
//! with 200, a security log and a metric ([`wa_core::replay`]).
//!
//! `/webhook` is the default app, `/webhook/<app_id>` the named app (its own app secret); an app
//! this deployment does not serve gets 404.
//!
//! A verified body that is not a usable webhook gets 200 (a retry cannot fix it) and is parked in
//! S3 under `quarantine/`, with an error log and a metric; so is one whose events the queue refuses
//! for good (the sender's fault). If parking fails, 503.

use std::borrow::Cow;

use lambda_http::{Body, Request, Response, http::Method};
use sha2::{Digest, Sha256};
use wa_core::apps::{AppRouting, webhook_app};
use wa_core::event::{EventKind, InboundEvent, claim_check, split_webhook};
use wa_core::ports::{BlobStore, EventQueue, QueueError, SecretSource};
use wa_core::queue_text::sqs_safe;
use wa_core::secrets::SecretStage;
use wa_core::signature::{SIGNATURE_HEADER, Signature, SignatureError};
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "webhook-ingest";
/// Key prefix of parked bodies.
pub const QUARANTINE_PREFIX: &str = "quarantine/";
pub use wa_core::event::CLAIM_CHECK_PREFIX;
/// How many days the payload bucket keeps each prefix (its lifecycle rules in `template.yaml`,
/// checked by `scripts/check_template.py`; the local stack applies the same): claim-checked events
/// outlive any queue retention (14 days), parked bodies are kept a year for a look.
pub const BLOB_LIFECYCLE_DAYS: [(&str, u64); 2] = [(CLAIM_CHECK_PREFIX, 15), (QUARANTINE_PREFIX, 365)];

/// What the handler needs: where events go, where big or bad payloads go, and the app secret.
pub struct Ingest<Q, B, S> {
    /// The inbound queue.
    pub queue: Q,
    /// Parked bodies and claim-checked events.
    pub blobs: B,
    /// The app secrets (one app, or several routed by path).
    pub secrets: S,
    /// The acceptance window in seconds ([`wa_core::replay`]); `None` accepts events of any age.
    pub max_event_age_s: Option<u64>,
}

/// How a request ended, for the response and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event is on the queue, but for those dropped as replays.
    Enqueued {
        /// Events enqueued.
        events: usize,
        /// Of which claim-checked.
        claim_checked: usize,
        /// Events dropped: older than the acceptance window.
        stale: usize,
    },
    /// Verified but unusable; the body is parked under this key.
    Parked {
        /// The S3 key.
        key: String,
    },
    /// Refused: bad or missing signature.
    Unauthorized(SignatureError),
    /// Not a POST.
    MethodNotAllowed,
    /// Not a webhook path, or an app this deployment does not serve.
    NotFound,
    /// A dependency failed; Meta will redeliver.
    Unavailable(String),
}

impl Outcome {
    /// The HTTP status Meta sees.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Enqueued { .. } | Self::Parked { .. } => 200,
            Self::Unauthorized(_) => 401,
            Self::MethodNotAllowed => 405,
            Self::NotFound => 404,
            Self::Unavailable(_) => 503,
        }
    }
}

/// Handles one webhook request.
pub async fn handle<Q: EventQueue, B: BlobStore, S: AppRouting>(
    deps: &Ingest<Q, B, S>,
    request: &Request,
) -> Response<Body> {
    let outcome = process(deps, request, telemetry::now_millis()).await;
    let text = match &outcome {
        Outcome::Enqueued { .. } | Outcome::Parked { .. } => "ok",
        Outcome::Unauthorized(_) => "invalid signature",
        Outcome::MethodNotAllowed => "method not allowed",
        Outcome::NotFound => "not found",
        Outcome::Unavailable(_) => "temporarily unavailable, retry",
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(outcome.status()).unwrap_or_default();
    response.headers_mut().insert("content-type", lambda_http::http::HeaderValue::from_static("text/plain"));
    response
}

/// Every webhook request, where nothing routes GET and POST apart (a Lambda function URL,
/// template.yaml's `WebhookEndpoint: FunctionUrl`): Meta's verification GET is answered as
/// webhook-verify answers it, anything else as [`handle`] answers it.
pub async fn serve<Q: EventQueue, B: BlobStore, S: AppRouting>(
    deps: &Ingest<Q, B, S>,
    request: &Request,
) -> Response<Body> {
    if request.method() == Method::GET {
        return webhook_verify::handle(&deps.secrets, request).await;
    }
    handle(deps, request).await
}

/// Verifies, splits and enqueues; returns what happened.
pub async fn process<Q: EventQueue, B: BlobStore, S: AppRouting>(
    deps: &Ingest<Q, B, S>,
    request: &Request,
    received_at: u64,
) -> Outcome {
    if request.method() != Method::POST {
        return Outcome::MethodNotAllowed;
    }
    let Some(app) = webhook_app(request.uri().path()) else { return Outcome::NotFound };
    let secrets = match deps.secrets.for_app(app).await {
        Ok(Some(secrets)) => secrets,
        Ok(None) => {
            tracing::warn!(app = app.unwrap_or_default(), "webhook_unknown_app");
            return Outcome::NotFound;
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the app secret; answering 503");
            return Outcome::Unavailable(error.to_string());
        }
    };
    let body: &[u8] = request.body().as_ref();
    let headers = request.headers().get_all(SIGNATURE_HEADER).iter().map(|v| v.as_bytes());
    let signature = match Signature::from_header_values(headers) {
        Ok(signature) => signature,
        Err(reason) => return unauthorized(reason, body.len()),
    };
    match verify(secrets, &signature, body).await {
        Ok(()) => {}
        Err(Verification::Refused(reason)) => return unauthorized(reason, body.len()),
        Err(Verification::Unavailable(reason)) => {
            tracing::error!(%reason, "cannot read the app secret; answering 503");
            return Outcome::Unavailable(reason);
        }
    }

    let mut events = match split_webhook(body, received_at) {
        Ok(events) => events,
        Err(reason) => return park(&deps.blobs, body, received_at, &reason.to_string()).await,
    };
    let stale = deps.max_event_age_s.map_or(0, |max_age_s| drop_stale(&mut events, body, received_at, max_age_s));
    if events.is_empty() {
        return Outcome::Enqueued { events: 0, claim_checked: 0, stale };
    }
    let count = events.len();
    let (bodies, claim_checked) = match serialize(&deps.queue, &deps.blobs, &events).await {
        Ok(done) => done,
        Err(reason) => {
            tracing::error!(%reason, events = count, "claim-check failed; answering 503");
            return Outcome::Unavailable(reason);
        }
    };
    if let Err(error) = deps.queue.publish(&bodies).await {
        if let QueueError::Refused { .. } = error {
            // Meta's redeliveries would be refused the same way for 7 days, then dropped: the body
            // is parked instead (every event in it, for `wa replay` once the cause is fixed).
            telemetry::emit(FUNCTION, None, &[("EnqueueRefusals", 1.0)]);
            return park(&deps.blobs, body, received_at, &error.to_string()).await;
        }
        tracing::error!(%error, events = count, "events not all accepted by the queue; answering 503");
        telemetry::emit(FUNCTION, None, &[("EnqueueFailures", 1.0)]);
        return Outcome::Unavailable(error.to_string());
    }
    record_events(&events, claim_checked);
    Outcome::Enqueued { events: count, claim_checked, stale }
}

/// Drops the events older than `max_age_s` at `received_at` (ms): a replay of a captured request.
/// Logged as a security event with the body's digest, never its content; returns how many went.
fn drop_stale(events: &mut Vec<InboundEvent<'_>>, body: &[u8], received_at: u64, max_age_s: u64) -> usize {
    let now_s = i64::try_from(received_at / 1000).unwrap_or(i64::MAX);
    let before = events.len();
    let mut oldest_age_s = 0;
    events.retain(|event| match wa_core::replay::stale_age(event.timestamp, now_s, max_age_s) {
        Some(age) => {
            oldest_age_s = oldest_age_s.max(age);
            false
        }
        None => true,
    });
    let dropped = before - events.len();
    if dropped > 0 {
        let digest = hex::encode(Sha256::digest(body));
        tracing::warn!(
            security = true,
            dropped,
            kept = events.len(),
            oldest_age_s,
            max_age_s,
            sha256 = %digest,
            "webhook_replay_dropped"
        );
        telemetry::emit(FUNCTION, None, &[("StaleEventsDropped", dropped as f64)]);
    }
    dropped
}

enum Verification {
    Refused(SignatureError),
    Unavailable(String),
}

/// Current secret first, then the previous one (grace after a reset), then — rate-limited — a
/// fresh read of the current one, in case the secret was changed since it was cached.
async fn verify<S: SecretSource>(secrets: &S, signature: &Signature, body: &[u8]) -> Result<(), Verification> {
    let current = secrets.get(SecretStage::Current).await.map_err(|e| Verification::Unavailable(e.to_string()))?;
    let current = current.ok_or_else(|| Verification::Unavailable("the secret has no AWSCURRENT version".into()))?;
    if signature.verify(body, current.app_secret.as_bytes()) {
        return Ok(());
    }
    match secrets.get(SecretStage::Previous).await {
        Ok(Some(previous)) if signature.verify(body, previous.app_secret.as_bytes()) => {
            tracing::warn!("signature matched the previous app secret");
            telemetry::emit(FUNCTION, None, &[("SignaturePreviousSecret", 1.0)]);
            return Ok(());
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the previous app secret"),
    }
    if let Ok(Some(fresh)) = secrets.refresh(SecretStage::Current).await
        && fresh.app_secret != current.app_secret
        && signature.verify(body, fresh.app_secret.as_bytes())
    {
        return Ok(());
    }
    Err(Verification::Refused(SignatureError::Mismatch))
}

fn unauthorized(reason: SignatureError, body_len: usize) -> Outcome {
    tracing::warn!(%reason, body_bytes = body_len, "sig_invalid");
    telemetry::emit(FUNCTION, None, &[("SignatureFailures", 1.0)]);
    Outcome::Unauthorized(reason)
}

/// Parks a verified but unusable body under `quarantine/`; 503 if that fails, so nothing is lost.
async fn park<B: BlobStore>(blobs: &B, body: &[u8], received_at: u64, reason: &str) -> Outcome {
    let digest = hex::encode(Sha256::digest(body));
    let key = format!("{QUARANTINE_PREFIX}{received_at}-{}.json", &digest[..16]);
    match blobs.put(&key, body.to_vec(), "application/json").await {
        Ok(()) => {
            tracing::error!(%reason, key = %key, sha256 = %digest, body_bytes = body.len(), "webhook_parked");
            telemetry::emit(FUNCTION, None, &[("WebhooksParked", 1.0)]);
            Outcome::Parked { key }
        }
        Err(error) => {
            tracing::error!(%reason, %error, "cannot park an unusable webhook; answering 503");
            Outcome::Unavailable(error.to_string())
        }
    }
}

/// Serializes every event; those too large for one queue message are stored whole in S3 and
/// replaced by a reference. Returns the bodies and how many were claim-checked.
async fn serialize<Q: EventQueue, B: BlobStore>(
    queue: &Q,
    blobs: &B,
    events: &[InboundEvent<'_>],
) -> Result<(Vec<String>, usize), String> {
    let limit = queue.max_message_bytes();
    let mut bodies = Vec::with_capacity(events.len());
    let mut claim_checked = 0;
    for event in events {
        let body = event.to_json().map_err(|e| e.to_string())?;
        // Escaped before its size is judged: the queue would escape it anyway.
        let body = match sqs_safe(&body) {
            Cow::Borrowed(_) => body,
            Cow::Owned(escaped) => escaped,
        };
        if body.len() <= limit {
            bodies.push(body);
            continue;
        }
        bodies.push(claim_check(blobs, event, body).await.map_err(|e| e.to_string())?);
        claim_checked += 1;
    }
    Ok((bodies, claim_checked))
}

fn record_events(events: &[InboundEvent<'_>], claim_checked: usize) {
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == kind).count() as f64;
    // Only the counts that are not zero: CloudWatch sums what it gets, and a webhook's log line
    // is half as long (CloudWatch Logs bills by the byte, once per webhook).
    let counts: Vec<(&str, f64)> = [
        ("EventsIn", events.len() as f64),
        ("MessagesIn", count(EventKind::Message)),
        ("StatusesIn", count(EventKind::Status)),
        ("ErrorsIn", count(EventKind::Error)),
        ("TemplateEventsIn", count(EventKind::Template)),
        ("AccountEventsIn", count(EventKind::Account)),
        ("OtherEventsIn", count(EventKind::Other)),
        ("ClaimChecked", claim_checked as f64),
    ]
    .into_iter()
    .filter(|(name, n)| *n > 0.0 || *name == "EventsIn")
    .collect();
    telemetry::emit(FUNCTION, None, &counts);
    tracing::info!(events = events.len(), claim_checked, "webhook_enqueued");
}
