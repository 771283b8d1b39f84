//! Test harness: moto server on 127.0.0.1 (started once per test binary, stopped when the binary
//! exits), AWS clients pointed at it, API Gateway v2 events, Meta fixtures, and an SQS fault proxy
//! for the failures moto cannot produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fault_proxy;
pub mod faults;
pub mod logs;
pub mod recorder;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use base64::Engine;

/// The repository root.
#[must_use]
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    _child: Child,
}

/// Watches its parent and exits when it is gone, so moto never outlives the test binary; and makes
/// moto's DynamoDB answer one request at a time. moto serves each request on a thread of its own and
/// checks a condition expression and then writes, with no lock between: two concurrent conditional
/// writes to one item can both succeed, which DynamoDB never allows (its conditional writes are
/// atomic, and our idempotency claims, rate slots and status ranks rely on that).
const MOTO_WRAPPER: &str = r#"
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(0.3)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.dynamodb.responses import DynamoHandler
dynamodb_lock = threading.Lock()
unlocked_call_action = DynamoHandler.call_action
def call_action(self):
    with dynamodb_lock:
        return unlocked_call_action(self)
DynamoHandler.call_action = call_action
# moto backs up every table a TransactWriteItems touches with a deepcopy, to roll back on failure:
# time and memory grow with the table (a fault run's 20,000 ledger transactions slowed it to a
# crawl at 18 GB). Back up the items the transaction names instead, and put them back on failure:
# the same all-or-nothing outcome. Safe under the lock above (one DynamoDB request at a time).
import copy
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
whole_table_transact = DynamoDBBackend.transact_write_items
class NoTableCopies:
    @staticmethod
    def deepcopy(value, *args, **kwargs):
        return value if isinstance(value, dynamodb_models.Table) else copy.deepcopy(value, *args, **kwargs)
def transact_write_items(self, transact_items):
    saved = []
    for item in transact_items:
        _, op = next(iter(item.items()))
        name = op.get("TableName")
        if name not in self.tables:
            continue
        table = self.tables[name]
        key = op.get("Key")
        if key is None and "Item" in op:
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        if key is not None:
            current = self.get_item(name, key)
            saved.append((name, key, None if current is None else current.to_json()["Attributes"]))
    dynamodb_models.copy = NoTableCopies
    try:
        return whole_table_transact(self, transact_items)
    except Exception:
        for name, key, attributes in saved:
            if attributes is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, attributes)
        raise
    finally:
        dynamodb_models.copy = copy
DynamoDBBackend.transact_write_items = transact_write_items
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// The tests' Python (the venv with moto and botocore, or `WA_TEST_PYTHON`).
#[must_use]
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WA_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    repo_root().join(".venv/bin/python")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("local addr").port()
}

/// The shared moto server, started on first use. Panics (failing the test loudly) when moto cannot
/// start: these tests never skip themselves.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

impl Moto {
    /// Starts a moto server of its own (the fault runs give DynamoDB one, so that two Python
    /// processes share the work). Panics when moto cannot start.
    #[must_use]
    pub fn start() -> Self {
        let python = python();
        assert!(
            python.exists(),
            "moto server cannot start: {} does not exist. Run scripts/test.sh, which creates the venv \
             with moto[server], or set WA_TEST_PYTHON to a Python that has it.",
            python.display()
        );
        let port = free_port();
        let mut child = Command::new(&python)
            .args(["-c", MOTO_WRAPPER, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("moto server cannot start: {}: {e}", python.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("moto server exited with {status} before listening:\n{err}");
            }
            assert!(Instant::now() < deadline, "moto server did not listen on 127.0.0.1:{port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Drain stderr so moto never blocks on a full pipe.
        if let Some(mut stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = stderr.read_to_end(&mut sink);
            });
        }
        Moto { endpoint: format!("http://127.0.0.1:{port}"), _child: child }
    }
}

/// SDK configuration for an endpoint on loopback, with fixed test credentials and the functions'
/// settings (timeouts, retries, the HTTP client with the compiled-in TLS roots Lambda gets).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    wa_infra::aws::loader_with(|_| None)
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "wa-tests"))
        .load()
        .await
}

/// SDK configuration for the shared moto server (and the file logs of this binary).
pub async fn moto_config() -> SdkConfig {
    logs::init();
    sdk_config(&moto().endpoint).await
}

/// The harness's own calls (creating resources, draining queues) with generous timeouts: the
/// functions' 8 s per call is for production, and a busy machine can make moto slower than that.
fn patient(config: &SdkConfig) -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build();
    config.to_builder().timeout_config(timeouts).build()
}

/// A name unique within this test run.
#[must_use]
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Creates a standard queue with the given `MaximumMessageSize`; returns its URL.
pub async fn create_queue(config: &SdkConfig, max_message_bytes: usize) -> String {
    let sqs = aws_sdk_sqs::Client::new(&patient(config));
    sqs.create_queue()
        .queue_name(unique("inbound"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize, max_message_bytes.to_string())
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Receives every message currently on the queue (deleting them), in no particular order.
pub async fn drain_queue(config: &SdkConfig, queue_url: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&patient(config));
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.clone().unwrap_or_default());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Creates a bucket; returns its name.
pub async fn create_bucket(config: &SdkConfig) -> String {
    let name = unique("payloads");
    wa_infra::aws::s3_client(&patient(config)).create_bucket().bucket(&name).send().await.expect("create bucket");
    name
}

/// Lists the keys under a prefix.
pub async fn list_keys(config: &SdkConfig, bucket: &str, prefix: &str) -> Vec<String> {
    let out = wa_infra::aws::s3_client(&patient(config))
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects");
    out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect()
}

/// The app secret JSON used by tests.
#[must_use]
pub fn secret_json(app_secret: &str, verify_token: &str) -> String {
    serde_json::json!({
        "app_id": "1234567890",
        "app_secret": app_secret,
        "verify_token": verify_token,
        "access_token": "test-access-token",
    })
    .to_string()
}

/// Creates a secret with an AWSCURRENT value and optional AWSPREVIOUS and AWSPENDING ones;
/// returns its name.
pub async fn create_secret(config: &SdkConfig, current: &str, previous: Option<&str>, pending: Option<&str>) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&patient(config));
    let name = unique("whatsapp");
    for value in [Some(current), previous, pending].into_iter().flatten() {
        logs::note_secret_json(value);
    }
    let first = previous.unwrap_or(current);
    sm.create_secret().name(&name).secret_string(first).send().await.expect("create secret");
    if previous.is_some() {
        // Putting a new value moves AWSCURRENT to it and AWSPREVIOUS to the first one.
        sm.put_secret_value().secret_id(&name).secret_string(current).send().await.expect("put current");
    }
    if let Some(pending) = pending {
        sm.put_secret_value()
            .secret_id(&name)
            .secret_string(pending)
            .version_stages("AWSPENDING")
            .send()
            .await
            .expect("put pending");
    }
    name
}

/// An API Gateway HTTP API (payload v2) event, as Lambda delivers it, turned into the request our
/// handlers receive by `lambda_http` itself.
#[must_use]
pub fn apigw_request(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    base64: bool,
) -> lambda_http::Request {
    apigw_request_at("/webhook", method, query, headers, body, base64)
}

/// Like [`apigw_request`], on another path (`/webhook/<app_id>`).
#[must_use]
pub fn apigw_request_at(
    path: &str,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    base64: bool,
) -> lambda_http::Request {
    let route = if path == "/webhook" { "/webhook".to_owned() } else { "/webhook/{app}".to_owned() };
    let header_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .chain([("host".to_owned(), "abc123.execute-api.us-east-1.amazonaws.com".into())])
        .collect();
    let body_field = body.map(|b| {
        if base64 {
            base64::engine::general_purpose::STANDARD.encode(b)
        } else {
            String::from_utf8(b.to_vec()).expect("a non-base64 body must be UTF-8")
        }
    });
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "173.252.127.1", "userAgent": "facebookexternalua"},
            "requestId": "req-1",
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "25/Nov/2026:01:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "body": body_field,
        "isBase64Encoded": base64
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// The 16 webhook examples of Meta's spec: (name, body bytes exactly as in the fixture file).
#[must_use]
pub fn webhook_examples() -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fixtures/meta/webhooks");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures/meta/webhooks")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// A JSON Schema of `schemas/`, compiled.
#[must_use]
pub fn schema(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("schemas").join(file)).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// The inbound event JSON Schema, compiled.
#[must_use]
pub fn inbound_event_schema() -> jsonschema::Validator {
    schema("inbound-event.v1.json")
}

/// Checks one events-queue message against the schema of its kind: `send_result`
/// (`send-result.v1.json`), `delivery_failure` (`delivery-failure.v1.json`), or an inbound event with
/// its `conversation` (`inbound-event.v1.json`). Panics naming what is wrong.
pub fn assert_events_queue_message(message: &serde_json::Value) {
    let file = match message.get("kind").and_then(serde_json::Value::as_str) {
        Some("send_result") => "send-result.v1.json",
        Some("delivery_failure") => "delivery-failure.v1.json",
        _ => "inbound-event.v1.json",
    };
    let validator = schema(file);
    let errors: Vec<String> = validator.iter_errors(message).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{file}: {errors:?} in {message}");
}

pub mod esm;
pub mod send_stack;

/// Creates a FIFO queue (as the outbound queue is) with a short visibility timeout; returns its URL.
pub async fn create_fifo_queue(config: &SdkConfig, visibility_timeout_s: u32) -> String {
    let sqs = aws_sdk_sqs::Client::new(&patient(config));
    sqs.create_queue()
        .queue_name(format!("{}.fifo", unique("outbound")))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
        .send()
        .await
        .expect("create fifo queue")
        .queue_url
        .expect("queue url")
}

/// Creates the state table as template.yaml does (pk/sk strings, the `by_wamid` index, TTL on
/// expires_at).
pub async fn create_state_table(config: &SdkConfig) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType, TimeToLiveSpecification,
    };
    let ddb = aws_sdk_dynamodb::Client::new(&patient(config));
    let name = unique("state");
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
    ddb.create_table()
        .table_name(&name)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("wamid"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(wa_infra::dynamo::WAMID_INDEX)
                .key_schema(key("wamid", KeyType::Hash))
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    ddb.update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().unwrap(),
        )
        .send()
        .await
        .expect("enable ttl");
    name
}
