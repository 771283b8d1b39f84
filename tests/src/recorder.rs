#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A recording proxy in front of moto: every AWS call that goes through it is written down (its
//! operation and body), so that a test counts what reached AWS — the SMS SNS published, the
//! e-mails SES sent — rather than what our code says it did. It can also fail chosen entries of
//! EventBridge `PutEvents` calls the way EventBridge does (the entry is not put, the answer says
//! `InternalFailure` for it), which moto never does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One call seen.
#[derive(Debug, Clone)]
pub struct Call {
    /// `AWSEvents.PutEvents`, `SNS.Publish`, `SESv2.POST /v2/email/outbound-emails`, ...
    pub operation: String,
    /// The request body as sent.
    pub body: String,
}

#[derive(Default)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<Call>>,
    /// Per `PutEvents` call, in order: the entry indexes to fail.
    put_events_failures: Mutex<VecDeque<Vec<usize>>>,
}

/// A running recorder.
#[derive(Clone)]
pub struct Recorder {
    /// `http://127.0.0.1:<port>`: the `AWS_ENDPOINT_URL` of the clients under test.
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts a recorder in front of `upstream` (moto).
    pub async fn start(upstream: &str) -> Self {
        let shared = Arc::new(Shared { upstream: upstream.trim_end_matches('/').to_owned(), ..Shared::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, shared }
    }

    /// Every call so far.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The calls of one operation.
    #[must_use]
    pub fn calls_of(&self, operation: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.operation == operation).collect()
    }

    /// The next `PutEvents` calls fail these entries (one list per call, in order).
    pub fn fail_put_events(&self, per_call: Vec<Vec<usize>>) {
        self.shared.put_events_failures.lock().unwrap().extend(per_call);
    }
}

/// SNS publishing an SMS.
pub const SNS_PUBLISH: &str = "SNS.Publish";
/// SES v2 sending an e-mail.
pub const SES_SEND_EMAIL: &str = "SESv2.POST /v2/email/outbound-emails";
/// EventBridge's `PutEvents`.
pub const PUT_EVENTS: &str = "AWSEvents.PutEvents";

fn operation(headers: &HeaderMap, method: &Method, uri: &Uri, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        return target.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    if let Some(action) = text.split('&').find_map(|pair| pair.strip_prefix("Action=")) {
        return format!("SNS.{action}");
    }
    if uri.path().starts_with("/v2/email") {
        return format!("SESv2.{method} {}", uri.path());
    }
    format!("{method} {}", uri.path())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = operation(&headers, &method, &uri, &body);
    shared
        .calls
        .lock()
        .unwrap()
        .push(Call { operation: op.clone(), body: String::from_utf8_lossy(&body).into_owned() });
    if op == PUT_EVENTS {
        let failing = shared.put_events_failures.lock().unwrap().pop_front();
        if let Some(failing) = failing.filter(|f| !f.is_empty()) {
            return put_events_failing(&shared, method, &uri, &headers, &body, &failing).await;
        }
    }
    let (status, content_type, bytes) = forward(&shared, method, &uri, &headers, body).await;
    (status, [("content-type", content_type)], bytes).into_response()
}

/// Puts the entries not in `failing` through moto and answers as EventBridge would for the whole
/// call: the others' event ids, `InternalFailure` for the failed ones.
async fn put_events_failing(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    failing: &[usize],
) -> Response {
    let mut request: Value = serde_json::from_slice(body).unwrap();
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let kept: Vec<Value> =
        entries.iter().enumerate().filter(|(i, _)| !failing.contains(i)).map(|(_, e)| e.clone()).collect();
    let mut ids = VecDeque::new();
    if !kept.is_empty() {
        request["Entries"] = Value::Array(kept);
        let (status, _, answer) = forward(shared, method, uri, headers, Bytes::from(request.to_string())).await;
        assert_eq!(status, StatusCode::OK, "moto refused the kept entries");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        ids = answer["Entries"].as_array().unwrap().iter().cloned().collect();
    }
    let results: Vec<Value> = (0..entries.len())
        .map(|i| {
            if failing.contains(&i) {
                json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected by the test"})
            } else {
                ids.pop_front().unwrap()
            }
        })
        .collect();
    let answer =
        json!({"FailedEntryCount": failing.iter().filter(|&&i| i < entries.len()).count(), "Entries": results});
    (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], answer.to_string()).into_response()
}

async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> (StatusCode, String, Bytes) {
    let url = format!("{}{}", shared.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = shared.client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.expect("moto answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    (status, content_type, response.bytes().await.unwrap_or_default())
}
