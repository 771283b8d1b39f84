//! POST /webhook against SQS, S3 and Secrets Manager on moto.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wa_core::event::resolve_event;
use wa_core::signature::sign;
use wa_core::webhook::{Message, MessageType, WebhookPayload};
use wa_infra::s3::S3Blobs;
use wa_tests::fault_proxy::{FaultPlan, FaultProxy};
use wa_tests::{apigw_request, inbound_event_schema, list_keys, moto, sdk_config, secret_json, webhook_examples};
use webhook_ingest::{CLAIM_CHECK_PREFIX, QUARANTINE_PREFIX};

use crate::stack::{APP_SECRET, Stack, closed_port_config};

fn signed(body: &[u8]) -> lambda_http::Request {
    signed_with(body, APP_SECRET, false)
}

fn signed_with(body: &[u8], secret: &str, base64: bool) -> lambda_http::Request {
    let signature = sign(secret.as_bytes(), body);
    apigw_request(
        "POST",
        "",
        &[("x-hub-signature-256", &signature), ("content-type", "application/json")],
        Some(body),
        base64,
    )
}

/// What the events of a webhook must be: one per message, status and error, and one per other
/// change, with the payload each must carry.
fn expected_items(body: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for entry in body["entry"].as_array().unwrap() {
        for change in entry["changes"].as_array().unwrap() {
            let field = change["field"].as_str().unwrap().to_owned();
            let value = &change["value"];
            let mut split = false;
            for (key, kind) in [("messages", "message"), ("statuses", "status"), ("errors", "error")] {
                for item in value.get(key).and_then(Value::as_array).into_iter().flatten() {
                    out.push((kind.to_owned(), field.clone(), item.clone()));
                    split = true;
                }
            }
            if !split {
                out.push(("other".to_owned(), field.clone(), value.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_spec_example_reaches_the_queue_item_for_item() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let schema = inbound_event_schema();
    let examples = webhook_examples();
    assert_eq!(examples.len(), 16, "Meta's spec has 16 webhook examples");
    for (name, body) in examples {
        // The typed model accepts every example too.
        let typed: WebhookPayload = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        for change in typed.entry.iter().flat_map(|e| &e.changes) {
            change.typed().unwrap_or_else(|e| panic!("{name}: {e}"));
        }

        let response = webhook_ingest::handle(&deps, &signed(&body)).await;
        assert_eq!(response.status(), 200, "{name}");
        let raw_messages = stack.raw_messages().await;
        let original: Value = serde_json::from_slice(&body).unwrap();
        let mut expected = expected_items(&original);
        assert_eq!(raw_messages.len(), expected.len(), "{name}: one event per item");
        let body_text = std::str::from_utf8(&body).unwrap();
        for raw in &raw_messages {
            let event: Value = serde_json::from_str(raw).unwrap();
            if let Err(error) = schema.validate(&event) {
                panic!("{name}: event does not match schemas/inbound-event.v1.json: {error}\n{event:#}");
            }
            // Byte for byte: the payload text is a slice of what Meta sent.
            let parsed: wa_core::event::InboundEvent<'_> = serde_json::from_str(raw).unwrap();
            assert!(body_text.contains(parsed.payload.unwrap().get()), "{name}: payload altered");
            let position = expected
                .iter()
                .position(|(kind, field, payload)| {
                    event["payload"] == *payload && event["field"] == *field.as_str() && event["kind"] == *kind.as_str()
                })
                .unwrap_or_else(|| panic!("{name}: unexpected event {event:#}"));
            expected.remove(position);
            let entry = &original["entry"][0];
            assert_eq!(event["waba_id"], entry["id"], "{name}");
            assert_eq!(event["phone_number_id"], entry["changes"][0]["value"]["metadata"]["phone_number_id"], "{name}");
            if event["kind"] == "message" {
                let message: Message = parsed.payload_as().unwrap();
                assert_eq!(event["event_id"], message.id.as_str(), "{name}");
                assert_eq!(event["user_id"].as_str(), message.user_id(), "{name}");
                assert!(!matches!(message.kind, MessageType::Unknown(_)), "{name}: {:?}", message.kind);
                if let Some(contacts) = entry["changes"][0]["value"]["contacts"].as_array() {
                    assert_eq!(event["contact"], contacts[0], "{name}: contact profile attached");
                }
                assert_eq!(event["timestamp"], message.timestamp.unwrap().as_unix_seconds().unwrap(), "{name}");
            } else {
                assert!(event["event_id"].as_str().unwrap().starts_with("sha256:"), "{name}");
            }
        }
        assert!(expected.is_empty(), "{name}: items without an event: {expected:?}");
    }
}

#[tokio::test]
async fn redelivery_produces_the_same_event_ids() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let ids = |events: Vec<Value>| {
        let mut ids: Vec<String> = events.iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    for (name, body) in webhook_examples() {
        assert_eq!(webhook_ingest::handle(&deps, &signed(&body)).await.status(), 200);
        let first = ids(stack.drain().await);
        // Meta may re-batch or re-format a redelivery; ids must not change.
        let reformatted = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
        assert_eq!(webhook_ingest::handle(&deps, &signed(&reformatted)).await.status(), 200);
        assert_eq!(first, ids(stack.drain().await), "{name}");
    }
}

#[tokio::test]
async fn bad_signatures_are_401_and_enqueue_nothing() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let body = webhook_examples().remove(0).1;
    let good = sign(APP_SECRET.as_bytes(), &body);
    let digest = good.trim_start_matches("sha256=").to_owned();
    let headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("x-hub-signature-256", String::new())],
        vec![("x-hub-signature-256", format!("sha1={digest}"))],
        vec![("x-hub-signature-256", format!("sha256={}", digest.to_uppercase()))],
        vec![("x-hub-signature-256", format!("sha256={}", &digest[1..]))],
        vec![("x-hub-signature-256", format!("sha256={}xy", &digest[2..]))],
        // API Gateway joins a repeated header with a comma.
        vec![("x-hub-signature-256", format!("{good},{good}"))],
        vec![("x-hub-signature-256", sign(b"another-secret", &body))],
        vec![("x-hub-signature", format!("sha1={digest}"))],
    ];
    for header in headers {
        let pairs: Vec<(&str, &str)> = header.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = apigw_request("POST", "", &pairs, Some(&body), false);
        let response = webhook_ingest::handle(&deps, &request).await;
        assert_eq!(response.status(), 401, "{header:?}");
    }
    // A body changed after signing.
    let mut tampered = body.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    let request = apigw_request("POST", "", &[("x-hub-signature-256", &good)], Some(&tampered), false);
    assert_eq!(webhook_ingest::handle(&deps, &request).await.status(), 401);
    // Two header values (a direct HTTP request, as the local stack receives it).
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhook")
        .header("x-hub-signature-256", &good)
        .header("x-hub-signature-256", &good)
        .body(lambda_http::Body::from(body.clone()))
        .unwrap();
    assert_eq!(webhook_ingest::handle(&deps, &request).await.status(), 401);
    // Wrong method.
    let request = apigw_request("GET", "", &[("x-hub-signature-256", &good)], Some(&body), false);
    assert_eq!(webhook_ingest::handle(&deps, &request).await.status(), 405);

    assert!(stack.drain().await.is_empty(), "nothing may be enqueued");
    assert!(list_keys(&stack.aws, &stack.bucket, "").await.is_empty(), "nothing may be parked");
}

fn text_webhook(text_json: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Zoë \u00e9"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"wamid.{}","timestamp":"1750275992","text":{{"body":{text_json}}},"type":"text"}}]}},"field":"messages"}}]}}]}}"#,
        text_json.len()
    )
}

#[tokio::test]
async fn unicode_escaped_and_base64_bodies_verify_and_arrive_intact() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let cases = [
        ("\"Olá! 🎉👍🏽 J'ai mangé des pâtes\"", "Olá! 🎉👍🏽 J'ai mangé des pâtes"),
        ("\"\u{202B}مرحبا\u{202C} שלום עולם\"", "\u{202B}مرحبا\u{202C} שלום עולם"),
        (r#""\u00e4\u00f6\u00e5 \ud83d\ude00""#, "äöå 😀"),
        (r#""mail: a@b.com, path a\/b/c <tag> 100%""#, "mail: a@b.com, path a/b/c <tag> 100%"),
    ];
    for (json_text, decoded) in cases {
        let body = text_webhook(json_text);
        for base64 in [false, true] {
            let response = webhook_ingest::handle(&deps, &signed_with(body.as_bytes(), APP_SECRET, base64)).await;
            assert_eq!(response.status(), 200, "{json_text} base64={base64}");
            let raw = stack.raw_messages().await;
            assert_eq!(raw.len(), 1);
            let event: wa_core::event::InboundEvent<'_> = serde_json::from_str(&raw[0]).unwrap();
            assert!(body.contains(event.payload.unwrap().get()), "payload must be byte-identical");
            let message: Message = event.payload_as().unwrap();
            assert_eq!(message.text.unwrap().body, decoded);
            assert!(event.contact.unwrap().get().contains(r"Zo\u00eb") || event.contact.unwrap().get().contains("Zoë"));
        }
    }
}

#[tokio::test]
async fn characters_sqs_refuses_arrive_intact() {
    let stack = Stack::new(262_144).await;
    // The proxy refuses raw U+FFFE / U+FFFF as SQS does (moto takes anything).
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::None).await;
    let deps = stack.ingest_via(&sdk_config(&proxy.endpoint).await, &stack.aws, &stack.aws);
    for (json_text, decoded) in [
        ("\"odd \u{FFFF} and \u{FFFE} raw\"", "odd \u{FFFF} and \u{FFFE} raw"),
        (r#""odd \uffff escaped""#, "odd \u{FFFF} escaped"),
    ] {
        let body = text_webhook(json_text);
        let response = webhook_ingest::handle(&deps, &signed(body.as_bytes())).await;
        assert_eq!(response.status(), 200, "{json_text}");
        assert_eq!(proxy.failed_entries(), 0, "nothing SQS would refuse was sent");
        let raw = stack.raw_messages().await;
        assert_eq!(raw.len(), 1);
        let event: wa_core::event::InboundEvent<'_> = serde_json::from_str(&raw[0]).unwrap();
        let message: Message = event.payload_as().unwrap();
        assert_eq!(message.text.unwrap().body, decoded);
    }
}

#[tokio::test]
async fn previous_app_secret_is_accepted_during_the_grace_period() {
    let stack =
        Stack::with_secret(262_144, &secret_json("new-secret", "vt"), Some(&secret_json("old-secret", "vt")), None)
            .await;
    let deps = stack.ingest();
    let body = webhook_examples().remove(0).1;
    for secret in ["new-secret", "old-secret"] {
        assert_eq!(webhook_ingest::handle(&deps, &signed_with(&body, secret, false)).await.status(), 200, "{secret}");
    }
    assert_eq!(webhook_ingest::handle(&deps, &signed_with(&body, "older-secret", false)).await.status(), 401);
    assert_eq!(stack.drain().await.len(), 2);
}

#[tokio::test]
async fn an_app_secret_changed_after_caching_is_picked_up() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let body = webhook_examples().remove(0).1;
    assert_eq!(webhook_ingest::handle(&deps, &signed(&body)).await.status(), 200);
    // The operator stores a reset app secret; the cached one is stale, the refresh finds the new one.
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(secret_json("reset-secret", "vt"))
        .send()
        .await
        .unwrap();
    assert_eq!(webhook_ingest::handle(&deps, &signed_with(&body, "reset-secret", false)).await.status(), 200);
    assert_eq!(stack.drain().await.len(), 2);
}

const STATUSES: [&str; 3] = ["sent", "delivered", "read"];

fn status(i: usize) -> Value {
    json!({
        "id": format!("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI{i:08}"),
        "status": STATUSES[i % 3],
        "timestamp": (1_750_000_000 + i).to_string(),
        "recipient_id": format!("1650555{i:04}"),
        "conversation": {"id": format!("conv-{i}"), "origin": {"type": "utility"}},
        "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"},
        "biz_opaque_callback_data": format!("order-{i}-{}", "x".repeat(2600)),
    })
}

fn statuses_webhook(count: usize) -> Vec<u8> {
    let statuses: Vec<Value> = (0..count).map(status).collect();
    serde_json::to_vec(&json!({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
        "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
        "statuses": statuses}}]}]}))
    .unwrap()
}

#[tokio::test]
async fn a_batch_of_1000_statuses_of_3_mb_goes_through_in_100_calls() {
    let stack = Stack::new(262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::None).await;
    let via_proxy = sdk_config(&proxy.endpoint).await;
    let deps = stack.ingest_via(&via_proxy, &stack.aws, &stack.aws);
    let body = statuses_webhook(1000);
    assert!(body.len() > 2_900_000, "about 3 MB: {}", body.len());
    let response = webhook_ingest::handle(&deps, &signed(&body)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(proxy.distinct_batches(), 100, "one SendMessageBatch per 10 events");
    let events = stack.drain().await;
    let mut ids: Vec<&str> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    // An SDK retry after a timeout (a loaded machine) may enqueue a batch twice: duplicates, never
    // losses; consumers dedupe on event_id.
    let retried_calls = proxy.batch_calls() - proxy.distinct_batches();
    let total = ids.len();
    ids.dedup();
    assert!(total - ids.len() <= retried_calls * 10, "duplicates only from retried calls");
    let mut expected: Vec<String> = (0..1000)
        .map(|i| format!("{}:{}", status(i)["id"].as_str().unwrap(), status(i)["status"].as_str().unwrap()))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(events.iter().all(|e| e["kind"] == "status" && e["user_id"].as_str().unwrap().starts_with("1650555")));
}

#[tokio::test]
async fn failed_batch_entries_are_retried_until_accepted() {
    let stack = Stack::new(262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::FailOddEntries { calls: 3 }).await;
    let deps = stack.ingest_via(&sdk_config(&proxy.endpoint).await, &stack.aws, &stack.aws);
    let body = statuses_webhook(25);
    let response = webhook_ingest::handle(&deps, &signed(&body)).await;
    assert_eq!(response.status(), 200);
    assert!(proxy.failed_entries() > 0, "the fault was injected");
    let events = stack.drain().await;
    let mut ids: Vec<&str> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every event");
    let retried_calls = proxy.batch_calls() - proxy.distinct_batches();
    assert!(total - ids.len() <= retried_calls * 10, "failed entries are not enqueued twice");
}

#[tokio::test]
async fn entries_that_keep_failing_make_a_503() {
    let stack = Stack::new(262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::FailFirstEntryAlways).await;
    let deps = stack.ingest_via(&sdk_config(&proxy.endpoint).await, &stack.aws, &stack.aws);
    let response = webhook_ingest::handle(&deps, &signed(&statuses_webhook(25))).await;
    assert_eq!(response.status(), 503, "Meta must redeliver");
}

#[tokio::test]
async fn events_the_queue_refuses_for_good_park_the_webhook() {
    let stack = Stack::new(262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::RefuseFirstEntryAlways).await;
    let deps = stack.ingest_via(&sdk_config(&proxy.endpoint).await, &stack.aws, &stack.aws);
    let body = statuses_webhook(25);
    let response = webhook_ingest::handle(&deps, &signed(&body)).await;
    assert_eq!(response.status(), 200, "a redelivery would be refused the same way");
    assert_eq!(proxy.batch_calls(), 3, "three batches, none offered again");
    assert_eq!(stack.drain().await.len(), 22, "the others are queued");
    let parked = list_keys(&stack.aws, &stack.bucket, QUARANTINE_PREFIX).await;
    assert_eq!(parked.len(), 1, "the whole webhook is kept, for wa replay");
    let blobs = S3Blobs::new(wa_infra::aws::s3_client(&stack.aws), stack.bucket.clone());
    assert_eq!(wa_core::ports::BlobStore::get(&blobs, &parked[0]).await.unwrap(), body, "byte for byte");
}

#[tokio::test]
async fn queue_endpoint_down_makes_a_503() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest_via(&closed_port_config().await, &stack.aws, &stack.aws);
    let body = webhook_examples().remove(0).1;
    assert_eq!(webhook_ingest::handle(&deps, &signed(&body)).await.status(), 503);
}

#[tokio::test]
async fn secrets_manager_down_makes_a_503_never_an_unverified_200() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest_via(&stack.aws, &stack.aws, &closed_port_config().await);
    let body = webhook_examples().remove(0).1;
    assert_eq!(webhook_ingest::handle(&deps, &signed(&body)).await.status(), 503);
    assert!(stack.drain().await.is_empty());
}

#[tokio::test]
async fn an_event_too_big_for_sqs_is_claim_checked_intact() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    // A flow reply whose response_json is larger than a queue message, next to a normal message.
    let big = "é".repeat(200_000);
    let body = serde_json::to_vec(
        &json!({"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":"P"},
        "messages":[
            {"from":"1","id":"wamid.big","timestamp":"1","type":"interactive",
             "interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","body":"Sent","response_json":big}}},
            {"from":"1","id":"wamid.small","timestamp":"2","type":"text","text":{"body":"hi"}}]}}]}]}),
    )
    .unwrap();
    assert_eq!(webhook_ingest::handle(&deps, &signed(&body)).await.status(), 200);
    let raw = stack.raw_messages().await;
    assert_eq!(raw.len(), 2);
    let schema = inbound_event_schema();
    let blobs = S3Blobs::new(wa_infra::aws::s3_client(&stack.aws), stack.bucket.clone());
    let mut resolved = BTreeMap::new();
    for message in &raw {
        assert!(message.len() <= 262_144);
        let value: Value = serde_json::from_str(message).unwrap();
        assert!(schema.validate(&value).is_ok(), "{value}");
        let full = resolve_event(&blobs, message).await.unwrap();
        let event: Value = serde_json::from_str(&full).unwrap();
        assert!(schema.validate(&event).is_ok());
        resolved.insert(event["event_id"].as_str().unwrap().to_owned(), (value, event));
    }
    let (queued, full) = &resolved["wamid.big"];
    assert!(
        queued.get("payload").is_none()
            && queued["payload_ref"]["key"].as_str().unwrap().starts_with(CLAIM_CHECK_PREFIX)
    );
    assert_eq!(full["payload"]["interactive"]["nfm_reply"]["response_json"], big);
    assert_eq!(full["kind"], "message");
    let (queued, _) = &resolved["wamid.small"];
    assert_eq!(queued["payload"]["text"]["body"], "hi", "small events stay inline");
}

/// A `messages` webhook with one text message and one status per timestamp (Unix seconds).
fn dated_webhook(message_at: &[i64], status_at: &[i64]) -> Vec<u8> {
    let messages: Vec<Value> = message_at
        .iter()
        .map(|t| json!({"from": "16505551234", "id": format!("wamid.m{t}"), "timestamp": t.to_string(), "type": "text", "text": {"body": "hi"}}))
        .collect();
    let statuses: Vec<Value> = status_at
        .iter()
        .map(|t| json!({"id": format!("wamid.s{t}"), "status": "read", "timestamp": t.to_string(), "recipient_id": "16505551234"}))
        .collect();
    serde_json::to_vec(&json!({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
        "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
        "contacts":[{"profile":{"name":"Zoë"},"wa_id":"16505551234"}],"messages": messages, "statuses": statuses}}]}]}))
    .unwrap()
}

#[tokio::test]
async fn replayed_old_webhooks_are_acknowledged_and_dropped() {
    use webhook_ingest::Outcome;
    let stack = Stack::new(262_144).await;
    let deps = webhook_ingest::Ingest { max_event_age_s: Some(wa_core::replay::DEFAULT_MAX_AGE_S), ..stack.ingest() };
    let now_ms = wa_infra::telemetry::now_millis();
    let now = i64::try_from(now_ms / 1000).unwrap();
    let day = 86_400;
    let process = |body: Vec<u8>| {
        let deps = &deps;
        async move { webhook_ingest::process(deps, &signed(&body), now_ms).await }
    };

    // Meta's own example, dated 2025, replayed: 200, nothing queued, nothing parked.
    let example = std::fs::read(wa_tests::repo_root().join("fixtures/meta/webhooks/text-message.json")).unwrap();
    let outcome = process(example.clone()).await;
    assert_eq!(outcome, Outcome::Enqueued { events: 0, claim_checked: 0, stale: 1 });
    assert_eq!(outcome.status(), 200, "never 4xx: Meta would retry it");
    assert_eq!(webhook_ingest::handle(&deps, &signed(&example)).await.status(), 200);
    assert!(stack.drain().await.is_empty(), "a replay past the window is not queued");
    assert!(list_keys(&stack.aws, &stack.bucket, "").await.is_empty(), "nor parked: a replay flood stores nothing");

    // Meta's last retries (7 days late) and fresh events pass; only what is past 8 days is dropped,
    // message by message and status by status.
    let body = dated_webhook(&[now - 9 * day, now - 7 * day, now], &[now - 30 * day, now - day]);
    assert_eq!(process(body).await, Outcome::Enqueued { events: 3, claim_checked: 0, stale: 2 });
    let mut ids: Vec<String> = stack.drain().await.iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut expected =
        vec![format!("wamid.m{}", now - 7 * day), format!("wamid.m{now}"), format!("wamid.s{}:read", now - day)];
    expected.sort();
    assert_eq!(ids, expected);

    // An event without a timestamp cannot be judged, and is kept (an account update here).
    let account = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}"#;
    assert_eq!(process(account.to_vec()).await, Outcome::Enqueued { events: 1, claim_checked: 0, stale: 0 });
    assert_eq!(stack.drain().await.len(), 1);

    // Without a window (`WEBHOOK_MAX_AGE_DAYS=0`), the old example is queued as before.
    let open = webhook_ingest::Ingest { max_event_age_s: None, ..stack.ingest() };
    let outcome = webhook_ingest::process(&open, &signed(&example), now_ms).await;
    assert_eq!(outcome, Outcome::Enqueued { events: 1, claim_checked: 0, stale: 0 });
    assert_eq!(stack.drain().await.len(), 1);
}

#[tokio::test]
async fn unusable_verified_bodies_are_parked_and_acknowledged() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let s3 = wa_infra::aws::s3_client(&stack.aws);
    for body in [
        &b"{not json at all"[..],
        br#"{"object":"page","entry":[{"id":"1","changes":[]}]}"#,
        br#"{"object":"whatsapp_business_account","entry":[]}"#,
        br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":["x"]}}]}]}"#,
        b"\xff\xfe\x00binary",
    ] {
        let response = webhook_ingest::handle(&deps, &signed_with(body, APP_SECRET, true)).await;
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(body));
        let keys = list_keys(&stack.aws, &stack.bucket, QUARANTINE_PREFIX).await;
        let mut found = false;
        for key in keys {
            let object = s3.get_object().bucket(&stack.bucket).key(&key).send().await.unwrap();
            let bytes = object.body.collect().await.unwrap().into_bytes();
            found |= bytes.as_ref() == body;
        }
        assert!(found, "the raw body is parked byte for byte");
    }
    assert!(stack.drain().await.is_empty());
}

#[tokio::test]
async fn parking_failure_makes_a_503() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest_via(&stack.aws, &closed_port_config().await, &stack.aws);
    assert_eq!(webhook_ingest::handle(&deps, &signed(b"{broken")).await.status(), 503);
}
