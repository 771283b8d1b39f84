//! An HTTP proxy in front of moto's SQS that makes `SendMessageBatch` report some entries as
//! failed — a fault moto cannot produce. Entries it fails are not forwarded (so they are really not
//! enqueued); the rest go to moto and moto's answer is merged with the injected failures. It can
//! also answer whole calls with an SQS error, and it keeps the last `SendMessageBatch` request as
//! received (to check its signature). Like SQS, and unlike moto, it refuses a message whose body
//! holds a character outside the set SQS allows (`InvalidMessageContents`: a failed entry, the
//! sender's fault, in `SendMessageBatch`; an error answer to `SendMessage`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which entries to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlan {
    /// Forward everything.
    None,
    /// In the next `calls` SendMessageBatch calls, fail every entry at an odd position.
    FailOddEntries {
        /// How many calls are affected.
        calls: usize,
    },
    /// Fail the first entry of every call, forever.
    FailFirstEntryAlways,
    /// Fail the first entry of every call as the sender's fault (as SQS does for an invalid
    /// attribute: a retry cannot succeed), forever.
    RefuseFirstEntryAlways,
    /// Answer the next `calls` SendMessageBatch calls with this HTTP status and SQS error code
    /// (nothing forwarded), then forward everything.
    AnswerError {
        /// HTTP status.
        status: u16,
        /// The error's `__type` code.
        code: &'static str,
        /// How many calls are affected.
        calls: usize,
    },
    /// Answer the next `calls` SendMessageBatch calls with `307 Temporary Redirect` to the upstream
    /// (a client that follows it reaches moto and succeeds), then forward everything.
    RedirectToUpstream {
        /// How many calls are affected.
        calls: usize,
    },
}

/// A request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Captured {
    /// `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    plan: std::sync::Mutex<FaultPlan>,
    batch_calls: AtomicUsize,
    failed_entries: AtomicUsize,
    batch_bodies: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
    last_batch: std::sync::Mutex<Option<Captured>>,
}

/// A running proxy.
#[derive(Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free loopback port, on the current runtime.
    pub async fn start(upstream: &str, plan: FaultPlan) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            plan: std::sync::Mutex::new(plan),
            batch_calls: AtomicUsize::new(0),
            failed_entries: AtomicUsize::new(0),
            batch_bodies: std::sync::Mutex::new(std::collections::HashSet::new()),
            last_batch: std::sync::Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, shared }
    }

    /// How many SendMessageBatch calls reached the proxy.
    #[must_use]
    pub fn batch_calls(&self) -> usize {
        self.shared.batch_calls.load(Ordering::SeqCst)
    }

    /// How many different SendMessageBatch requests reached the proxy (an SDK retry of the same
    /// request after a timeout counts once).
    #[must_use]
    pub fn distinct_batches(&self) -> usize {
        self.shared.batch_bodies.lock().expect("lock").len()
    }

    /// The last SendMessageBatch request received.
    #[must_use]
    pub fn last_batch(&self) -> Option<Captured> {
        self.shared.last_batch.lock().expect("lock").clone()
    }

    /// How many entries the proxy failed.
    #[must_use]
    pub fn failed_entries(&self) -> usize {
        self.shared.failed_entries.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_batch = headers.get("x-amz-target").is_some_and(|t| t == "AmazonSQS.SendMessageBatch");
    if !is_batch {
        let is_send = headers.get("x-amz-target").is_some_and(|t| t == "AmazonSQS.SendMessage");
        let request: Value = if is_send { serde_json::from_slice(&body).unwrap_or_default() } else { Value::Null };
        if is_send && !request["MessageBody"].as_str().unwrap_or_default().chars().all(wa_core::queue_text::sqs_allows)
        {
            let body = json!({"__type": "com.amazonaws.sqs#InvalidMessageContents",
                              "message": "Invalid characters found. (refused by the test proxy as SQS does)"});
            return (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.0")], body.to_string())
                .into_response();
        }
        return pass(&shared, method, &uri, &headers, body).await;
    }
    shared.batch_calls.fetch_add(1, Ordering::SeqCst);
    shared.batch_bodies.lock().expect("lock").insert(body.to_vec());
    *shared.last_batch.lock().expect("lock") = Some(Captured {
        method: method.to_string(),
        path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    {
        let mut plan = shared.plan.lock().expect("plan lock");
        if let FaultPlan::AnswerError { status, code, calls } = *plan
            && calls > 0
        {
            *plan = FaultPlan::AnswerError { status, code, calls: calls - 1 };
            let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": "injected by the test proxy"});
            let status = StatusCode::from_u16(status).expect("status");
            return (status, [("content-type", "application/x-amz-json-1.0")], body.to_string()).into_response();
        }
        if let FaultPlan::RedirectToUpstream { calls } = *plan
            && calls > 0
        {
            *plan = FaultPlan::RedirectToUpstream { calls: calls - 1 };
            let location = format!("{}{}", shared.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
            return (StatusCode::TEMPORARY_REDIRECT, [("location", location)], String::new()).into_response();
        }
    }
    let mut request: Value = serde_json::from_slice(&body).expect("SendMessageBatch JSON");
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    // Per entry: None to forward it, or the failure (code, sender's fault) to answer instead.
    let fail: Vec<Option<(&str, bool)>> = {
        let mut plan = shared.plan.lock().expect("plan lock");
        let injected: Vec<Option<(&str, bool)>> = match *plan {
            FaultPlan::None | FaultPlan::AnswerError { .. } | FaultPlan::RedirectToUpstream { .. } => {
                vec![None; entries.len()]
            }
            FaultPlan::FailOddEntries { calls } if calls > 0 => {
                *plan = FaultPlan::FailOddEntries { calls: calls - 1 };
                (0..entries.len()).map(|i| (i % 2 == 1).then_some(("InternalError", false))).collect()
            }
            FaultPlan::FailOddEntries { .. } => vec![None; entries.len()],
            FaultPlan::FailFirstEntryAlways => {
                (0..entries.len()).map(|i| (i == 0).then_some(("InternalError", false))).collect()
            }
            FaultPlan::RefuseFirstEntryAlways => {
                (0..entries.len()).map(|i| (i == 0).then_some(("InvalidParameterValue", true))).collect()
            }
        };
        entries
            .iter()
            .zip(injected)
            .map(|(entry, injected)| {
                let body = entry["MessageBody"].as_str().unwrap_or_default();
                let valid = body.chars().all(wa_core::queue_text::sqs_allows);
                if valid { injected } else { Some(("InvalidMessageContents", true)) }
            })
            .collect()
    };
    let failed: Vec<Value> = entries
        .iter()
        .zip(&fail)
        .filter_map(|(e, f)| f.map(|(code, sender_fault)| (e, code, sender_fault)))
        .map(|(e, code, sender_fault)| json!({"Id": e["Id"], "SenderFault": sender_fault, "Code": code, "Message": "injected by the test proxy"}))
        .collect();
    shared.failed_entries.fetch_add(failed.len(), Ordering::SeqCst);
    let kept: Vec<Value> = entries.into_iter().zip(&fail).filter(|(_, f)| f.is_none()).map(|(e, _)| e).collect();
    let mut successful = Vec::new();
    if !kept.is_empty() {
        request["Entries"] = Value::Array(kept);
        let upstream = pass(&shared, method, &uri, &headers, Bytes::from(request.to_string())).await;
        if upstream.status() != StatusCode::OK {
            return upstream;
        }
        let bytes = axum::body::to_bytes(upstream.into_body(), usize::MAX).await.expect("moto body");
        let answer: Value = serde_json::from_slice(&bytes).expect("moto JSON");
        successful = answer["Successful"].as_array().cloned().unwrap_or_default();
    }
    let body = json!({"Successful": successful, "Failed": failed}).to_string();
    ([("content-type", "application/x-amz-json-1.0")], body).into_response()
}

async fn pass(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let url = format!("{}{}", shared.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = shared.client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let content_type = response.headers().get("content-type").cloned();
            let bytes = response.bytes().await.unwrap_or_default();
            let mut out = (status, bytes).into_response();
            if let Some(ct) = content_type {
                out.headers_mut().insert("content-type", ct);
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
