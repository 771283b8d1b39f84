//! SQS `SendMessageBatch` as one SigV4-signed AWS JSON 1.0 `POST`, over reqwest (rustls).
//!
//! Every event the pipeline queues goes through this call, so it skips the SDK's per-call
//! orchestration (interceptors, endpoint rules, type-erased request and response): on one core it
//! costs 5.5 µs of CPU per event in a 10-event batch where the SDK's `send_message_batch` costs 13.5
//! (`wa-bench sqs-cpu`, BENCHMARKS.md). What the SDK decides once per process is still the SDK's:
//! the endpoint (its SQS endpoint rules: region, FIPS, dual-stack, `AWS_ENDPOINT_URL[_SQS]`), the
//! region, the credentials provider chain; the signature is `aws-sigv4`'s.
//!
//! Retries and timeouts are those of the SDK configuration it is built from ([`crate::aws`]: 3
//! attempts, 2 s to connect, 3 s per attempt, 8 s per call), for the errors the SDK's standard mode
//! retries (throttling, 5xx, transport), with a jittered exponential backoff. Anything else is an
//! error for the caller (which answers 503 or leaves the message on its queue, so nothing is lost).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::config::endpoint::{Params, ResolveEndpoint};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

/// Attempts per call when the configuration sets none (the SDK's standard mode).
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound of the first retry's random delay; it doubles on each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Credentials without an expiry (environment, static) are read again after this long, as the SDK's
/// identity cache does.
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// Credentials are renewed this long before they expire.
const EXPIRY_BUFFER: Duration = Duration::from_secs(5 * 60);
/// Error codes SQS (and AWS in general) uses for throttling and transient faults: retried.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "KmsThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// A failed `SendMessageBatch` call (no entry's fate is known, or every entry failed to be sent).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// SQS answered with an error (after the retries it allows).
    #[error("SQS answered {status} {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// The error code (`QueueDoesNotExist`, `AccessDenied`, …).
        code: String,
        /// SQS's message.
        message: String,
    },
    /// No answer: connection refused or lost, timeout (after the retries).
    #[error("SQS unreachable: {0}")]
    Transport(String),
    /// The credentials provider failed.
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// The request could not be signed.
    #[error("cannot sign the SQS request: {0}")]
    Signing(String),
    /// A 200 answer that is not a `SendMessageBatch` result: whether the entries were queued is unknown.
    #[error("unreadable SendMessageBatch answer: {0}")]
    Answer(String),
}

/// An entry SQS did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// The entry's id.
    pub id: String,
    /// SQS's code (`InternalError`, …; `NotInAnswer` when the answer did not mention the entry).
    pub code: String,
    /// Whether SQS blames the request (a retry will fail the same way).
    pub sender_fault: bool,
}

/// An SQS `SendMessageBatch` client; build it once per process (cheap to clone).
#[derive(Clone)]
pub struct BatchClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    host: String,
    region: String,
    provider: SharedCredentialsProvider,
    cached: Arc<Mutex<Option<(Identity, Instant)>>>,
    max_attempts: u32,
    operation_timeout: Duration,
}

impl std::fmt::Debug for BatchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchClient").field("endpoint", &self.endpoint.as_str()).field("region", &self.region).finish()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "QueueUrl")]
    queue_url: &'a str,
    #[serde(rename = "Entries")]
    entries: Vec<RequestEntry<'a>>,
}

#[derive(Serialize)]
struct RequestEntry<'a> {
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "MessageBody")]
    body: &'a str,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "Successful", default, borrow)]
    successful: Vec<Succeeded<'a>>,
    #[serde(rename = "Failed", default, borrow)]
    failed: Vec<Failed<'a>>,
}

#[derive(Deserialize)]
struct Succeeded<'a> {
    #[serde(rename = "Id", borrow)]
    id: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Failed<'a> {
    #[serde(rename = "Id", borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "Code", default, borrow)]
    code: std::borrow::Cow<'a, str>,
    #[serde(rename = "SenderFault", default)]
    sender_fault: bool,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

impl BatchClient {
    /// A client for the SQS endpoint, region and credentials `config` names, resolved as the SDK's
    /// SQS client resolves them.
    pub fn new(config: &SdkConfig) -> Result<Self, String> {
        let region = config.region().ok_or("no AWS region configured (AWS_REGION)")?.to_string();
        let provider = config.credentials_provider().ok_or("no AWS credentials provider configured")?;
        let params = Params::builder()
            .region(region.clone())
            .use_fips(config.use_fips().unwrap_or(false))
            .use_dual_stack(config.use_dual_stack().unwrap_or(false))
            .set_endpoint(endpoint_override(config))
            .build()
            .map_err(|e| format!("SQS endpoint parameters: {e}"))?;
        let resolved = aws_sdk_sqs::config::endpoint::DefaultResolver::new()
            .resolve_endpoint(&params)
            .now_or_never()
            .ok_or("the SQS endpoint resolver did not answer at once")?
            .map_err(|e| format!("cannot resolve the SQS endpoint: {e}"))?;
        let endpoint = reqwest::Url::parse(resolved.url())
            .map_err(|e| format!("SQS endpoint {} is not a URL: {e}", resolved.url()))?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(format!("SQS endpoint {endpoint} has no host")),
        };
        let defaults = crate::aws::timeouts();
        let timeouts = config.timeout_config().unwrap_or(&defaults);
        let timeout =
            |set: Option<Duration>, default: Option<Duration>| set.or(default).unwrap_or(Duration::from_secs(8));
        let http = crate::tls::reqwest_builder()
            .map_err(|e| format!("cannot set up TLS for SQS: {e}"))?
            .connect_timeout(timeout(timeouts.connect_timeout(), defaults.connect_timeout()))
            .timeout(timeout(timeouts.operation_attempt_timeout(), defaults.operation_attempt_timeout()))
            .pool_idle_timeout(Duration::from_secs(50))
            // A signed request is never sent on elsewhere: a redirect is an answer (an error), as
            // with the SDK. Following one would re-send the events to an address SQS did not give.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wa-pipeline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the SQS HTTP client: {e}"))?;
        Ok(Self {
            http,
            endpoint,
            host,
            region,
            provider,
            cached: Arc::new(Mutex::new(None)),
            max_attempts: config.retry_config().map_or(DEFAULT_MAX_ATTEMPTS, |r| r.max_attempts().max(1)),
            operation_timeout: timeout(timeouts.operation_timeout(), defaults.operation_timeout()),
        })
    }

    /// The endpoint requests go to.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends `entries` (id, body) to `queue_url` in one `SendMessageBatch`; returns the entries SQS
    /// did not take (empty: all queued). An entry the answer does not mention counts as failed.
    pub async fn send_message_batch(
        &self,
        queue_url: &str,
        entries: &[(&str, &str)],
    ) -> Result<Vec<FailedEntry>, BatchError> {
        let request =
            Request { queue_url, entries: entries.iter().map(|(id, body)| RequestEntry { id, body }).collect() };
        // Bodies are JSON: quotes are escaped, so leave room beyond their length.
        let mut payload = Vec::with_capacity(
            256 + queue_url.len() + entries.iter().map(|(_, b)| b.len() * 5 / 4 + 32).sum::<usize>(),
        );
        serde_json::to_writer(&mut payload, &request).map_err(|e| BatchError::Signing(e.to_string()))?;
        let payload = bytes::Bytes::from(payload);
        let call = async {
            let mut attempt = 1;
            loop {
                match self.attempt(&payload).await {
                    Ok((200, body)) => return answer(&body, entries),
                    Ok((status, body)) => {
                        let (error, retryable) = service_error(status, &body);
                        if !retryable || attempt >= self.max_attempts {
                            return Err(error);
                        }
                        tracing::warn!(attempt, %error, "SendMessageBatch failed; retrying");
                    }
                    Err(Attempt::Retryable(reason)) => {
                        if attempt >= self.max_attempts {
                            return Err(BatchError::Transport(reason));
                        }
                        tracing::warn!(attempt, %reason, "SendMessageBatch failed; retrying");
                    }
                    Err(Attempt::Fatal(error)) => return Err(error),
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        };
        tokio::time::timeout(self.operation_timeout, call).await.unwrap_or_else(|_| {
            Err(BatchError::Transport(format!("SendMessageBatch timed out after {:?}", self.operation_timeout)))
        })
    }

    async fn attempt(&self, payload: &bytes::Bytes) -> Result<(u16, bytes::Bytes), Attempt> {
        let identity = self.identity().await.map_err(Attempt::Fatal)?;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sqs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Attempt::Fatal(BatchError::Signing(e.to_string())))?
            .into();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AmazonSQS.SendMessageBatch"),
        ];
        let signable =
            SignableRequest::new("POST", self.endpoint.as_str(), headers.into_iter(), SignableBody::Bytes(payload))
                .map_err(|e| Attempt::Fatal(BatchError::Signing(e.to_string())))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Attempt::Fatal(BatchError::Signing(e.to_string())))?.into_parts();
        let mut request = self.http.post(self.endpoint.clone());
        for (name, value) in headers.into_iter().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request.body(payload.clone()).send().await.map_err(|e| Attempt::Retryable(describe(&e)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| Attempt::Retryable(describe(&e)))?;
        Ok((status, body))
    }

    /// The cached credentials as the signer takes them, renewed before they expire.
    async fn identity(&self) -> Result<Identity, BatchError> {
        {
            let cached = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((identity, fetched)) = cached.as_ref()
                && fresh(identity, *fetched)
            {
                return Ok(identity.clone());
            }
        }
        let credentials =
            self.provider.provide_credentials().await.map_err(|e| BatchError::Credentials(crate::aws::describe(&e)))?;
        let identity = Identity::from(credentials);
        *self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((identity.clone(), Instant::now()));
        Ok(identity)
    }
}

enum Attempt {
    Retryable(String),
    Fatal(BatchError),
}

/// `AWS_ENDPOINT_URL_SQS`/`AWS_ENDPOINT_URL` (or the profile's), or an endpoint set in code: what
/// the SDK's SQS client would use.
fn endpoint_override(config: &SdkConfig) -> Option<String> {
    if config.get_origin("endpoint_url").is_client_config() {
        return config.endpoint_url().map(str::to_owned);
    }
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("SQS")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    config.service_config().and_then(|c| c.load_config(key)).or_else(|| config.endpoint_url().map(str::to_owned))
}

fn fresh(identity: &Identity, fetched: Instant) -> bool {
    match identity.expiration() {
        Some(expiry) => expiry.duration_since(SystemTime::now()).is_ok_and(|left| left > EXPIRY_BUFFER),
        None => fetched.elapsed() < NO_EXPIRY_REFRESH,
    }
}

/// Full jitter: a random delay up to `BACKOFF_BASE × 2^(attempt − 1)`.
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE.saturating_mul(1 << (attempt.saturating_sub(1)).min(4));
    cap.mul_f64(fastrand::f64())
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", crate::aws::describe(error))
}

/// The entries a 200 answer reports as failed, and those it does not mention at all (public for
/// the fuzz target `sqs_answer`).
pub fn answer(body: &[u8], entries: &[(&str, &str)]) -> Result<Vec<FailedEntry>, BatchError> {
    let answer: Answer<'_> = serde_json::from_slice(body).map_err(|e| BatchError::Answer(e.to_string()))?;
    let mut failed: Vec<FailedEntry> = answer
        .failed
        .iter()
        .map(|f| FailedEntry { id: f.id.to_string(), code: f.code.to_string(), sender_fault: f.sender_fault })
        .collect();
    for (id, _) in entries {
        let mentioned = answer.successful.iter().any(|s| s.id == *id) || answer.failed.iter().any(|f| f.id == *id);
        if !mentioned {
            failed.push(FailedEntry { id: (*id).to_owned(), code: "NotInAnswer".into(), sender_fault: false });
        }
    }
    Ok(failed)
}

/// The error an answer other than 200 carries, and whether to retry it (public for the fuzz
/// target `sqs_answer`).
pub fn service_error(status: u16, body: &[u8]) -> (BatchError, bool) {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    // `__type` is `com.amazonaws.sqs#QueueDoesNotExist` (or the bare code).
    let code = parsed.kind.rsplit(['#', ':']).next().unwrap_or_default();
    let code = if code.is_empty() { format!("HTTP{status}") } else { code.to_owned() };
    let retryable = status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code.as_str());
    let mut message = parsed.message;
    message.truncate(300);
    (BatchError::Service { status, code, message }, retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_report_failed_and_unmentioned_entries() {
        let entries = [("m0", "a"), ("m1", "b"), ("m2", "c")];
        let all = br#"{"Successful":[{"Id":"m0","MessageId":"x","MD5OfMessageBody":"y"},{"Id":"m1"},{"Id":"m2"}]}"#;
        assert_eq!(answer(all, &entries).unwrap(), []);
        let some = br#"{"Successful":[{"Id":"m0"}],"Failed":[{"Id":"m1","Code":"InternalError","SenderFault":false,"Message":"x"}]}"#;
        assert_eq!(
            answer(some, &entries).unwrap(),
            [
                FailedEntry { id: "m1".into(), code: "InternalError".into(), sender_fault: false },
                FailedEntry { id: "m2".into(), code: "NotInAnswer".into(), sender_fault: false },
            ]
        );
        assert!(matches!(answer(b"<html>", &entries), Err(BatchError::Answer(_))));
        let escaped = br#"{"Successful":[{"Id":"m\u0030"},{"Id":"m1"},{"Id":"m2"}]}"#;
        assert_eq!(answer(escaped, &entries).unwrap(), [], "escaped ids are compared unescaped");
    }

    #[test]
    fn errors_are_classified() {
        let (error, retry) = service_error(
            400,
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
        );
        assert!(!retry);
        assert_eq!(error.to_string(), "SQS answered 400 QueueDoesNotExist: The specified queue does not exist.");
        assert!(service_error(400, br#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow"}"#).1);
        assert!(service_error(400, br#"{"__type":"ThrottlingException","Message":"slow"}"#).1);
        let (error, retry) = service_error(503, b"");
        assert!(retry);
        assert_eq!(error.to_string(), "SQS answered 503 HTTP503: ");
        assert!(!service_error(403, br#"{"__type":"com.amazon.coral.service#AccessDeniedException"}"#).1);
    }

    #[test]
    fn backoff_is_jittered_and_bounded() {
        for attempt in 1..=5 {
            let cap = BACKOFF_BASE * (1 << (attempt - 1).min(4));
            assert!((0..50).map(|_| backoff(attempt)).all(|d| d <= cap));
        }
    }
}
