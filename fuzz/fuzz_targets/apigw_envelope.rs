//! webhook-ingest behind API Gateway: any bytes as the HTTP API's event (the envelope Lambda
//! hands the function: headers, base64 flag, body, path), and any bytes as a correctly signed
//! body in a well-formed envelope, go through `lambda_http`'s parsing and the whole `process`
//! (signature, split, claim check, queue) with in-memory ports: never a panic, and a body that
//! is signed and splits is answered 200 with every event queued, else parked or refused.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use wa_core::ports::{BlobError, BlobStore, EventQueue, QueueError, SecretError, SecretSource};
use wa_core::secrets::{AppSecrets, SecretStage};
use webhook_ingest::{Ingest, Outcome};

const APP_SECRET: &str = "fuzz-app-secret";

#[derive(Default)]
struct Queue(Mutex<Vec<String>>);

impl EventQueue for Queue {
    fn max_message_bytes(&self) -> usize {
        4096
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        self.0.lock().unwrap().extend_from_slice(bodies);
        Ok(())
    }
}

#[derive(Default)]
struct Blobs(Mutex<HashMap<String, Vec<u8>>>);

impl BlobStore for Blobs {
    fn bucket(&self) -> &str {
        "fuzz"
    }

    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), BlobError> {
        self.0.lock().unwrap().insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.0.lock().unwrap().get(key).cloned().ok_or_else(|| BlobError::NotFound(key.to_owned()))
    }

    async fn renew(&self, _key: &str) -> Result<(), BlobError> {
        Ok(())
    }
}

struct Secret(Arc<AppSecrets>);

impl SecretSource for Secret {
    async fn get(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        Ok((stage == SecretStage::Current).then(|| self.0.clone()))
    }

    async fn refresh(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        self.get(stage).await
    }
}

fn ingest() -> Ingest<Queue, Blobs, Secret> {
    let secret = AppSecrets {
        app_id: "1".into(),
        app_secret: APP_SECRET.into(),
        verify_token: "v".into(),
        access_token: "t".into(),
        phone_number_tokens: Default::default(),
    };
    Ingest { queue: Queue::default(), blobs: Blobs::default(), secrets: Secret(Arc::new(secret)), max_event_age_s: None }
}

fn run(deps: &Ingest<Queue, Blobs, Secret>, event: &[u8]) -> Option<Outcome> {
    let request: lambda_http::request::LambdaRequest = serde_json::from_slice(event).ok()?;
    let request: lambda_http::Request = request.into();
    // In-memory ports are always ready: one poll finishes it.
    webhook_ingest::process(deps, &request, 1_795_000_000_000).now_or_never()
}

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as the envelope.
    let deps = ingest();
    let _ = run(&deps, data);

    // 2. The bytes as a body, signed, in a well-formed envelope.
    let body = String::from_utf8_lossy(data);
    let signature = wa_core::signature::sign(APP_SECRET.as_bytes(), body.as_bytes());
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "a.example", "domainPrefix": "a",
            "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "1.1.1.1", "userAgent": "f"},
            "requestId": "r", "routeKey": "POST /webhook", "stage": "$default", "time": "t", "timeEpoch": 0},
        "body": body, "isBase64Encoded": false
    });
    let deps = ingest();
    let outcome = run(&deps, event.to_string().as_bytes()).expect("a well-formed envelope is handled in one poll");
    match outcome {
        Outcome::Enqueued { events, claim_checked, .. } => {
            let queued = deps.queue.0.lock().unwrap().len();
            assert_eq!(queued, events, "every event queued");
            assert!(claim_checked <= events);
        }
        Outcome::Parked { .. } => assert!(deps.queue.0.lock().unwrap().is_empty()),
        other => panic!("a signed POST to /webhook answered {other:?}"),
    }
});
