//! An AWS fault proxy in front of moto, one per function instance (so that it knows whose call it
//! is): SQS `SendMessage`/`SendMessageBatch`, DynamoDB and S3 calls fail at the run's rates, with
//! the errors AWS gives — throttling, 5xx before the work, 5xx *after* the work (the ambiguous
//! case: the SDK retries a call AWS already did), and partial batch failures — and the function's
//! process is killed at the call its invocation's plan names ([`super::lambda::Kill::AtCall`]).
//! Every fault is counted by kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Rng;
use super::lambda::{CallAction, Function};

/// Fault rates, per call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    /// SQS sends (`SendMessage`, `SendMessageBatch`).
    pub sqs: f64,
    /// DynamoDB calls.
    pub dynamodb: f64,
    /// S3 calls.
    pub s3: f64,
}

/// Faults injected, by kind, shared by every proxy of a run.
#[derive(Debug, Clone, Default)]
pub struct Tally(Arc<Mutex<BTreeMap<String, u64>>>);

impl Tally {
    /// Counts one `kind`.
    pub fn add(&self, kind: &str, n: u64) {
        *super::lock(&self.0).entry(kind.to_owned()).or_default() += n;
    }

    /// Every kind with its count.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        super::lock(&self.0).clone()
    }

    /// The count of one kind.
    #[must_use]
    pub fn get(&self, kind: &str) -> u64 {
        super::lock(&self.0).get(kind).copied().unwrap_or(0)
    }
}

struct Shared {
    upstream: String,
    dynamodb: String,
    client: reqwest::Client,
    rates: Rates,
    rng: Mutex<Rng>,
    tally: Tally,
    function: Mutex<Option<Function>>,
    /// Every call forwarded or failed, by operation (what AWS would bill).
    calls: Mutex<BTreeMap<String, u64>>,
    /// What the calls consume where AWS bills by more than the call ([`units`]).
    units: Mutex<BTreeMap<String, f64>>,
}

/// A running proxy.
#[derive(Clone)]
pub struct Proxy {
    /// `http://127.0.0.1:<port>`: the function's `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (moto), DynamoDB calls to `dynamodb` (moto, or another moto).
    pub async fn start(upstream: &str, dynamodb: &str, rates: Rates, seed: u64, tally: Tally) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            dynamodb: dynamodb.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            rates,
            rng: Mutex::new(Rng::new(seed)),
            tally,
            function: Mutex::new(None),
            calls: Mutex::new(BTreeMap::new()),
            units: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the AWS proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, shared }
    }

    /// The calls this proxy saw, by operation (`AmazonSQS.SendMessageBatch`, `S3.PUT`, ...).
    #[must_use]
    pub fn calls(&self) -> BTreeMap<String, u64> {
        super::lock(&self.shared.calls).clone()
    }

    /// What the calls consumed: DynamoDB read and write request units, SQS batch entries.
    #[must_use]
    pub fn units(&self) -> BTreeMap<String, f64> {
        super::lock(&self.shared.units).clone()
    }

    /// The function whose calls this proxy sees (for kills at a call).
    pub fn attach(&self, function: &Function) {
        *super::lock(&self.shared.function) = Some(function.clone());
    }
}

/// What an AWS call is, from its headers.
fn operation(headers: &HeaderMap, method: &Method, uri: &Uri) -> String {
    match headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        Some(target) => target.to_owned(),
        None => {
            format!("S3.{method}{}", if uri.query().is_some_and(|q| q.contains("uploads")) { "Multipart" } else { "" })
        }
    }
}

enum Fault {
    Throttle,
    ServerBefore,
    ServerAfter,
    PartialBatch,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = operation(&headers, &method, &uri);
    *super::lock(&shared.calls).entry(op.clone()).or_default() += 1;
    for (unit, n) in units(&op, &body) {
        *super::lock(&shared.units).entry(unit).or_default() += n;
    }
    let function = super::lock(&shared.function).clone();
    let action = function.as_ref().map_or(CallAction::Forward, |f| f.on_aws_call(&op));
    if action == CallAction::KillBefore {
        shared.tally.add("process killed before an AWS call", 1);
        if let Some(function) = &function {
            function.kill_now("killed at an AWS call");
        }
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let fault = choose(&shared, &op);
    let answer = match fault {
        Some(Fault::Throttle) => {
            shared.tally.add(&format!("{} throttled", service(&op)), 1);
            error(&op, 400, true)
        }
        Some(Fault::ServerBefore) => {
            shared.tally.add(&format!("{} 5xx", service(&op)), 1);
            error(&op, 500, false)
        }
        Some(Fault::ServerAfter) => {
            shared.tally.add(&format!("{} 5xx after the work (ambiguous)", service(&op)), 1);
            let _ = pass(&shared, method, &uri, &headers, body).await;
            error(&op, 500, false)
        }
        Some(Fault::PartialBatch) => partial_batch(&shared, method, &uri, &headers, body).await,
        None => pass(&shared, method, &uri, &headers, body).await,
    };
    if action == CallAction::KillAfter {
        let what = if op.starts_with("AmazonSQS.SendMessage") { "an SQS send" } else { "an AWS call" };
        shared.tally.add(&format!("process killed after {what}"), 1);
        if let Some(function) = &function {
            function.kill_now("killed after an AWS call");
        }
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    answer
}

/// DynamoDB's on-demand request units of one call (items up to 1 KB written, 4 KB read: the
/// state table's are), and the entries of an SQS batch. A strongly consistent read of an item is
/// one read unit, an eventually consistent one half; a write one write unit; in a transaction
/// each item counts twice (DynamoDB's pricing).
pub(crate) fn units(op: &str, body: &[u8]) -> Vec<(String, f64)> {
    let Some(action) = op.strip_prefix("DynamoDB_20120810.") else {
        if op == "AmazonSQS.SendMessageBatch" {
            let json: Value = serde_json::from_slice(body).unwrap_or_default();
            let entries = json["Entries"].as_array().map_or(0, Vec::len);
            return vec![("SQS batch entries".to_owned(), entries as f64)];
        }
        return Vec::new();
    };
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let read = |consistent: &Value| if consistent.as_bool() == Some(true) { 1.0 } else { 0.5 };
    let mut out: Vec<(String, f64)> =
        units_of(action, &json, read).into_iter().map(|(u, n)| (u.to_owned(), n)).collect();
    // Which items: the key's kind (`SEND`, `CONV`, `LIMIT`, ...), for where the units go.
    let kind = |item: &Value| {
        let pk = item["Key"]["pk"]["S"].as_str().or(item["Item"]["pk"]["S"].as_str()).unwrap_or("?");
        pk.split('#').next().unwrap_or("?").to_owned()
    };
    let kinds: Vec<String> = match action {
        "TransactWriteItems" => json["TransactItems"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i.as_object()?.values().next().map(kind)).collect())
            .unwrap_or_default(),
        "BatchGetItem" | "BatchWriteItem" => vec!["batch".to_owned()],
        _ => vec![kind(&json)],
    };
    out.push((format!("DynamoDB {action} {}", kinds.join("+")), 1.0));
    out
}

fn units_of(action: &str, json: &Value, read: impl Fn(&Value) -> f64) -> Vec<(&'static str, f64)> {
    match action {
        "GetItem" | "Query" => vec![("DynamoDB read units", read(&json["ConsistentRead"]))],
        "BatchGetItem" => {
            let units = json["RequestItems"].as_object().map_or(0.0, |tables| {
                tables
                    .values()
                    .map(|t| t["Keys"].as_array().map_or(0, Vec::len) as f64 * read(&t["ConsistentRead"]))
                    .sum()
            });
            vec![("DynamoDB read units", units)]
        }
        "PutItem" | "UpdateItem" | "DeleteItem" => vec![("DynamoDB write units", 1.0)],
        "TransactWriteItems" => {
            vec![("DynamoDB write units", 2.0 * json["TransactItems"].as_array().map_or(0, Vec::len) as f64)]
        }
        "BatchWriteItem" => {
            let n = json["RequestItems"]
                .as_object()
                .map_or(0, |t| t.values().map(|v| v.as_array().map_or(0, Vec::len)).sum());
            vec![("DynamoDB write units", n as f64)]
        }
        _ => Vec::new(),
    }
}

fn service(op: &str) -> &'static str {
    if op.starts_with("AmazonSQS") {
        "SQS"
    } else if op.starts_with("DynamoDB") {
        "DynamoDB"
    } else if op.starts_with("S3") {
        "S3"
    } else {
        "other"
    }
}

fn choose(shared: &Shared, op: &str) -> Option<Fault> {
    let mut rng = super::lock(&shared.rng);
    match op {
        "AmazonSQS.SendMessageBatch" | "AmazonSQS.SendMessage" if rng.chance(shared.rates.sqs) => {
            Some(match rng.below(if op.ends_with("Batch") { 4 } else { 3 }) {
                0 => Fault::Throttle,
                1 => Fault::ServerBefore,
                2 => Fault::ServerAfter,
                _ => Fault::PartialBatch,
            })
        }
        _ if op.starts_with("DynamoDB") && rng.chance(shared.rates.dynamodb) => Some(match rng.below(4) {
            0 | 1 => Fault::Throttle,
            2 => Fault::ServerBefore,
            _ => Fault::ServerAfter,
        }),
        _ if op.starts_with("S3") && rng.chance(shared.rates.s3) => Some(Fault::ServerBefore),
        _ => None,
    }
}

/// AWS's error answer for `op`: JSON for SQS and DynamoDB, XML for S3.
fn error(op: &str, status: u16, throttle: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if op.starts_with("S3") {
        let code = if throttle { "SlowDown" } else { "InternalError" };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
        );
        return (status, [("content-type", "application/xml")], body).into_response();
    }
    let code = match (service(op), throttle) {
        ("DynamoDB", true) => "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        ("DynamoDB", false) => "com.amazonaws.dynamodb.v20120810#InternalServerError",
        (_, true) => "com.amazonaws.sqs#RequestThrottled",
        _ => "com.amazonaws.sqs#InternalError",
    };
    let body = json!({"__type": code, "message": "injected by the fault run"});
    (status, [("content-type", "application/x-amz-json-1.0")], body.to_string()).into_response()
}

/// Fails a random non-empty part of a `SendMessageBatch`'s entries (not forwarded: really not
/// enqueued) and forwards the rest.
async fn partial_batch(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let Ok(mut request) = serde_json::from_slice::<Value>(&body) else {
        return pass(shared, method, uri, headers, body).await;
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let fail: Vec<bool> = {
        let mut rng = super::lock(&shared.rng);
        let mut fail: Vec<bool> = entries.iter().map(|_| rng.chance(0.5)).collect();
        if !fail.iter().any(|f| *f)
            && let Some(first) = fail.first_mut()
        {
            *first = true;
        }
        fail
    };
    let failed: Vec<Value> = entries
        .iter()
        .zip(&fail)
        .filter(|(_, f)| **f)
        .map(|(e, _)| json!({"Id": e["Id"], "SenderFault": false, "Code": "InternalError", "Message": "injected"}))
        .collect();
    shared.tally.add("SQS partial batch failure (entries)", u64::try_from(failed.len()).unwrap_or(0));
    let kept: Vec<Value> = entries.into_iter().zip(&fail).filter(|(_, f)| !**f).map(|(e, _)| e).collect();
    let mut successful = Vec::new();
    if !kept.is_empty() {
        request["Entries"] = Value::Array(kept);
        let upstream = pass(shared, method, uri, headers, Bytes::from(request.to_string())).await;
        if upstream.status() != StatusCode::OK {
            return upstream;
        }
        let bytes = axum::body::to_bytes(upstream.into_body(), usize::MAX).await.unwrap_or_default();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        successful = answer["Successful"].as_array().cloned().unwrap_or_default();
    }
    let body = json!({"Successful": successful, "Failed": failed}).to_string();
    ([("content-type", "application/x-amz-json-1.0")], body).into_response()
}

async fn pass(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let dynamodb = headers.get("x-amz-target").and_then(|t| t.to_str().ok()).is_some_and(|t| t.starts_with("DynamoDB"));
    let base = if dynamodb { &shared.dynamodb } else { &shared.upstream };
    let url = format!("{base}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = shared.client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let mut out_headers = HeaderMap::new();
            for (name, value) in response.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out_headers.insert(name.clone(), value.clone());
                }
            }
            let bytes = response.bytes().await.unwrap_or_default();
            let mut out = (status, bytes).into_response();
            out.headers_mut().extend(out_headers);
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
