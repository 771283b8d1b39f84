//! Shared pieces of the benchmarks: signed webhook payloads of any size, API Gateway events, and
//! the in-memory ports the CPU benchmarks run the ingest handler against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fake_aws;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use wa_core::ports::{BlobError, BlobStore, EventQueue, QueueError};
use wa_core::secrets::AppSecrets;

/// The app secret the benchmarks sign with.
pub const APP_SECRET: &str = "bench-app-secret";

/// The ingest handler's acceptance window in the benchmarks: 100 years, so that the replay check
/// runs on every event (its cost is measured) while the payloads, dated 2025, all pass it.
pub const MAX_EVENT_AGE_S: Option<u64> = Some(36_500 * 86_400);

/// The repository root.
#[must_use]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A Meta `messages` webhook with `n` text messages from `n` users, as Meta sends it (compact
/// JSON; `contacts[].user_id` included, as pywa's parser needs).
#[must_use]
pub fn webhook(n: usize) -> Vec<u8> {
    let contacts: Vec<Value> = (0..n)
        .map(|i| json!({"profile": {"name": format!("User {i}")}, "wa_id": format!("1650555{i:04}"), "user_id": format!("US.{i:013}")}))
        .collect();
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({"from": format!("1650555{i:04}"), "id": format!("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA{i:06}"),
                   "timestamp": "1749416383", "type": "text", "text": {"body": format!("Hello, is order {i} ready? Thanks!")}})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": contacts, "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

/// Meta's 16 example webhooks.
#[must_use]
pub fn spec_examples() -> Vec<Vec<u8>> {
    let dir = repo_root().join("fixtures/meta/webhooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The API Gateway HTTP API (v2) event Lambda delivers for a signed POST of `body`.
#[must_use]
pub fn apigw_event(body: &[u8]) -> String {
    let signature = wa_core::signature::sign(APP_SECRET.as_bytes(), body);
    json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature,
                    "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "facebookexternalua"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "173.252.127.1", "userAgent": "facebookexternalua"}, "requestId": "req-1", "routeKey": "POST /webhook",
            "stage": "$default", "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000u64},
        "body": String::from_utf8(body.to_vec()).unwrap(),
        "isBase64Encoded": false
    })
    .to_string()
}

/// The API Gateway event of Meta's verification GET with `verify_token`.
#[must_use]
pub fn apigw_verify_event(verify_token: &str) -> String {
    let query = format!("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={verify_token}");
    json!({
        "version": "2.0", "routeKey": "GET /webhook", "rawPath": "/webhook", "rawQueryString": query,
        "queryStringParameters": {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": verify_token},
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "facebookplatform/1.0"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "http": {"method": "GET", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "173.252.127.1", "userAgent": "facebookplatform/1.0"}, "requestId": "req-1", "routeKey": "GET /webhook",
            "stage": "$default", "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000u64},
        "isBase64Encoded": false
    })
    .to_string()
}

/// One inbound event v1 (a user's text message), as ingest puts it on the inbound queue.
#[must_use]
pub fn inbound_event() -> Value {
    json!({"version": 1, "kind": "message", "event_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA",
        "phone_number_id": "106540352242922", "user_id": "16505551234", "waba_id": "102290129340398", "field": "messages",
        "received_at": 1_795_000_000_000u64, "payload": {"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA",
        "timestamp": "1749416383", "type": "text", "text": {"body": "Hello, is my order ready? Thanks a lot, see you soon."}}})
}

/// The development app secret as a secret source.
#[must_use]
pub fn secrets() -> wa_infra_local::LocalSecrets {
    wa_infra_local::LocalSecrets(Arc::new(AppSecrets {
        app_id: "1".into(),
        app_secret: APP_SECRET.into(),
        verify_token: "v".into(),
        access_token: "t".into(),
        phone_number_tokens: std::collections::BTreeMap::new(),
    }))
}

/// Builds the SQS `SendMessageBatch` entries exactly as the SQS adapter does, without sending.
#[derive(Debug, Default)]
pub struct BatchBuilder;

impl EventQueue for BatchBuilder {
    fn max_message_bytes(&self) -> usize {
        262_144
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        for batch in wa_infra::sqs::batches(bodies) {
            let entries = batch
                .iter()
                .map(|(index, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{index}"))
                        .message_body(body.as_str())
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            std::hint::black_box(entries);
        }
        Ok(())
    }
}

/// A blob store that is never used on these payloads.
#[derive(Debug, Default)]
pub struct NoBlobs;

impl BlobStore for NoBlobs {
    fn bucket(&self) -> &str {
        "none"
    }

    async fn put(&self, _key: &str, _body: Vec<u8>, _content_type: &str) -> Result<(), BlobError> {
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        Err(BlobError::NotFound(key.to_owned()))
    }

    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        Err(BlobError::NotFound(key.to_owned()))
    }
}
