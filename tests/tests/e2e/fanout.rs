//! Fan-out through the pipeline's EventBridge bus, and the fallback function, against moto's
//! EventBridge (rules with SQS targets), SQS, DynamoDB, SNS and SES v2. What reached SNS and SES is
//! counted at a recording proxy in front of moto, not taken from our own code's word.
//!
//! moto does not implement a target's `InputPath`; the events queue's rule here passes
//! `$.detail.event` with the input transformer `<event>` instead, which delivers the same body.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_eventbridge::types::{InputTransformer, Target};
use fallback::Fallback;
use serde_json::{Value, json};
use wa_core::outcome::{DeliveryFailure, FailedStatus};
use wa_core::ports::{EventQueue, QueueError};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::{EventBus, Events};
use wa_infra::fallback::{AwsNotifier, Senders};
use wa_simulator::{Fault, FaultKind, SimConfig};
use wa_tests::recorder::{PUT_EVENTS, Recorder, SES_SEND_EMAIL, SNS_PUBLISH};
use wa_tests::send_stack::{PHONE, SendStack, mechanics, now_ms};
use wa_tests::{create_queue, drain_queue, moto, python, repo_root, sdk_config, unique};

use crate::identity::failed_status;
use crate::processor::Pipeline;

/// An EventBridge rule's event pattern, as template.yaml declares it (JSON).
fn template_pattern(rule: &str) -> String {
    let script = r#"
import json, sys, yaml
class Loader(yaml.SafeLoader):
    pass
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
template = yaml.load(open(sys.argv[1]), Loader=Loader)
print(json.dumps(template["Resources"][sys.argv[2]]["Properties"]["EventPattern"]))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script, repo_root().join("template.yaml").to_str().unwrap(), rule])
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn queue_arn(aws: &SdkConfig, url: &str) -> String {
    aws_sdk_sqs::Client::new(aws)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}

/// A bus as template.yaml builds it: the events queue gets every event (as `detail.event`), the
/// fallback queue what the template's `FallbackRule` selects. Returns the bus and the fallback queue.
async fn bus(aws: &SdkConfig, events_queue: &str) -> (String, String) {
    let eb = aws_sdk_eventbridge::Client::new(aws);
    let name = unique("bus");
    eb.create_event_bus().name(&name).send().await.unwrap();
    let events_arn = queue_arn(aws, events_queue).await;
    rule(aws, &name, "events", &template_pattern("EventsQueueRule"), &events_arn, true).await;
    let fallback = create_queue(aws, 262_144).await;
    let fallback_arn = queue_arn(aws, &fallback).await;
    rule(aws, &name, "fallback", &template_pattern("FallbackRule"), &fallback_arn, false).await;
    (name, fallback)
}

/// A rule on `bus` with one SQS target; `event_only`: the target gets `detail.event`.
async fn rule(aws: &SdkConfig, bus: &str, name: &str, pattern: &str, queue_arn: &str, event_only: bool) {
    let eb = aws_sdk_eventbridge::Client::new(aws);
    eb.put_rule().name(name).event_bus_name(bus).event_pattern(pattern).send().await.unwrap();
    let mut target = Target::builder().id(format!("{name}-target")).arn(queue_arn);
    if event_only {
        target = target.input_transformer(
            InputTransformer::builder()
                .input_paths_map("event", "$.detail.event")
                .input_template("<event>")
                .build()
                .unwrap(),
        );
    }
    eb.put_targets().rule(name).event_bus_name(bus).targets(target.build().unwrap()).send().await.unwrap();
}

fn parse(bodies: &[String]) -> Vec<Value> {
    bodies.iter().map(|b| serde_json::from_str(b).unwrap()).collect()
}

/// Every event the splitter makes of the recorded webhook bodies (all kinds).
fn golden_events() -> Vec<Value> {
    let text: String = std::fs::read_to_string(repo_root().join("fixtures/events/split.golden.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::Deserializer::from_str(&text).into_iter::<Value>().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_rule_for_inbound_messages_receives_only_those_and_the_events_queue_everything() {
    let aws = wa_tests::moto_config().await;
    let events_queue = create_queue(&aws, 262_144).await;
    let (bus, _) = bus(&aws, &events_queue).await;
    // A consumer's subscription: inbound messages only (the README's example).
    let crm = create_queue(&aws, 262_144).await;
    let pattern = json!({"source": ["whatsapp.pipeline"], "detail-type": ["message"]}).to_string();
    rule(&aws, &bus, "crm", &pattern, &queue_arn(&aws, &crm).await, false).await;

    let mut events = golden_events();
    events.push(json!({"version": 1, "kind": "send_result", "idempotency_key": "k1", "phone_number_id": PHONE,
        "status": "accepted", "wamid": "wamid.X", "used_fallback": false, "at": 1}));
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    EventBus::new(&aws, &bus).publish(&bodies).await.unwrap();

    let messages = events.iter().filter(|e| e["kind"] == "message").count();
    assert!(messages > 5 && messages < events.len(), "a mix: {messages} of {}", events.len());
    let received = parse(&drain_queue(&aws, &crm).await);
    assert_eq!(received.len(), messages, "every inbound message, nothing else");
    for entry in &received {
        assert_eq!(entry["source"], "whatsapp.pipeline");
        assert_eq!(entry["detail-type"], "message");
        assert_eq!(entry["detail"]["kind"], "message");
        assert_eq!(entry["detail"]["phone_number_id"], entry["detail"]["event"]["phone_number_id"]);
        assert_eq!(entry["detail"]["message_type"], entry["detail"]["event"]["payload"]["type"]);
    }
    // The events queue: every event, exactly as it was published, as its consumers always got it.
    let mut on_queue: Vec<String> =
        parse(&drain_queue(&aws, &events_queue).await).iter().map(Value::to_string).collect();
    let mut expected: Vec<String> = events.iter().map(Value::to_string).collect();
    on_queue.sort();
    expected.sort();
    assert_eq!(on_queue, expected);
}

#[tokio::test]
async fn the_templates_fallback_rule_selects_what_the_fallback_function_wants() {
    let aws = wa_tests::moto_config().await;
    let events_queue = create_queue(&aws, 262_144).await;
    let (bus, fallback_queue) = bus(&aws, &events_queue).await;
    let mut events = Vec::new();
    for (i, status) in ["accepted", "failed", "window_closed", "opted_out", "unknown"].iter().enumerate() {
        events.push(json!({"kind": "send_result", "idempotency_key": format!("r{i}"), "status": status}));
    }
    events.push(json!({"kind": "delivery_failure", "idempotency_key": "d1", "error": {"code": 131_026}}));
    events.push(json!({"kind": "status", "idempotency_key": "s1", "payload": {"status": "failed"}}));
    events.push(json!({"kind": "fallback_failed", "idempotency_key": "f1", "status": "failed"}));
    events.extend(golden_events());
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    EventBus::new(&aws, &bus).publish(&bodies).await.unwrap();

    let wanted: BTreeSet<String> = events
        .iter()
        .filter(|e| wa_core::fallback::wants(&wa_core::fanout::fields(e)))
        .map(|e| e["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(wanted, BTreeSet::from(["r1".into(), "r2".into(), "d1".into()]));
    let routed: BTreeSet<String> = parse(&drain_queue(&aws, &fallback_queue).await)
        .iter()
        .map(|e| e["detail"]["event"]["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(routed, wanted, "template.yaml's FallbackRule and wa_core::fallback::wants agree");
}

#[tokio::test]
async fn without_a_bus_events_go_to_the_events_queue_and_the_fallbacks_to_its_queue() {
    let aws = wa_tests::moto_config().await;
    let events_queue = create_queue(&aws, 262_144).await;
    let fallback_queue = create_queue(&aws, 262_144).await;
    let sqs = wa_infra::sqs::Sqs::new(&aws).unwrap();
    let to = wa_infra::config::EventsConfig {
        bus: None,
        queue: Some(events_queue.clone()),
        fallback: Some(fallback_queue.clone()),
    };
    let publisher = Events::new(&aws, &sqs, &to).unwrap();
    assert!(matches!(publisher, Events::Routed { .. }));
    let mut events = Vec::new();
    for (i, status) in ["accepted", "failed", "window_closed", "opted_out", "unknown"].iter().enumerate() {
        events.push(json!({"kind": "send_result", "idempotency_key": format!("r{i}"), "status": status}));
    }
    events.push(json!({"kind": "delivery_failure", "idempotency_key": "d1", "error": {"code": 131_026}}));
    events.push(json!({"kind": "fallback_failed", "idempotency_key": "f1", "status": "failed"}));
    events.extend(golden_events());
    // In groups of two, as a processor's batch forwards an event with its delivery failure.
    let groups: Vec<Vec<String>> = events.chunks(2).map(|c| c.iter().map(Value::to_string).collect()).collect();
    let results = publisher.publish_groups(&groups).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // Compared as values: characters SQS refuses travel as JSON escapes.
    let mut on_queue: Vec<String> =
        parse(&drain_queue(&aws, &events_queue).await).iter().map(Value::to_string).collect();
    let mut expected: Vec<String> = events.iter().map(Value::to_string).collect();
    on_queue.sort();
    expected.sort();
    assert!(
        on_queue == expected,
        "every event on the events queue, as published ({} of {})",
        on_queue.len(),
        expected.len()
    );
    let routed: BTreeSet<String> = parse(&drain_queue(&aws, &fallback_queue).await)
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(routed, BTreeSet::from(["r1".into(), "r2".into(), "d1".into()]), "what the FallbackRule selects");
}

/// The fallback function on the stack's table and bus, with SNS and SES through `recorder`.
fn fallback_fn(
    stack: &SendStack,
    aws_via_recorder: &SdkConfig,
    from: &str,
) -> Fallback<StateTable, Events, AwsNotifier> {
    Fallback {
        state: stack.table(),
        events: Events::Bus(EventBus::new(&stack.aws, stack.bus.clone().unwrap())),
        notifier: AwsNotifier::new(
            aws_via_recorder,
            Senders { email_from: Some(from.into()), sms_sender_id: Some("ACME".into()), ..Senders::default() },
        ),
    }
}

/// Receives the fallback queue's messages once (deleting them) as one SQS event.
async fn fallback_batch(aws: &SdkConfig, queue: &str, expected: usize) -> SqsEvent {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut records = Vec::new();
    for _ in 0..50 {
        let out = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages.unwrap_or_default() {
            records.push(json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}));
            sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
        if records.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), expected, "messages on the fallback queue");
    serde_json::from_value(json!({"Records": records})).unwrap()
}

fn with_channels(to: &str, key: &str) -> Value {
    json!({"phone_number_id": PHONE, "to": to, "idempotency_key": key, "callback_data": format!("cb-{key}"),
        "message": {"type": "text", "text": {"body": "Your parcel is at the door"}},
        "fallback_channels": {
            "sms": {"to": format!("+{to}"), "text": "Your parcel is at the door (SMS)"},
            "email": {"to": format!("{key}@example.com"), "subject": "Your parcel", "text": "It is at the door",
                      "html": "<p>It is at the door</p>"}}})
}

/// The fallback results on the events queue, by (key, channel) → kinds.
fn results(events: &[Value]) -> BTreeMap<(String, String), Vec<String>> {
    let schema = wa_tests::schema("fallback-result.v1.json");
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for event in events.iter().filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("fallback_"))) {
        if let Err(error) = schema.validate(event) {
            panic!("{event} does not match schemas/fallback-result.v1.json: {error}");
        }
        let key = (
            event["idempotency_key"].as_str().unwrap().to_owned(),
            event["channel"].as_str().unwrap_or("-").to_owned(),
        );
        out.entry(key).or_default().push(event["kind"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn an_undelivered_request_with_both_channels_gets_one_sms_and_one_email_even_redelivered() {
    // Ingest and the processor on one state table, the sender on the same table; both publish to
    // the bus, as deployed.
    let mut p = Pipeline::new().await;
    let (bus, fallback_queue) = bus(&p.stack.aws, &p.events).await;
    p.processor.events = Events::Bus(EventBus::new(&p.stack.aws, bus.clone()));
    let mut stack = SendStack::new(SimConfig::default()).await;
    stack.table.clone_from(&p.table_name);
    stack.events.clone_from(&p.events);
    stack.bus = Some(bus.clone());
    let recorder = Recorder::start(&moto().endpoint).await;
    let via_recorder = sdk_config(&recorder.endpoint).await;
    let from = format!("{}@pipeline.example.com", unique("from"));
    aws_sdk_sesv2::Client::new(&stack.aws).create_email_identity().email_identity(&from).send().await.unwrap();

    // Refused by Meta at once (131026: not a WhatsApp user) → a failed send_result.
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 131_026, http_status: 400 },
        count: 1,
        to: Some("16505552001".into()),
        endpoint: None,
    });
    stack.enqueue(&with_channels("16505552001", "refused"), "refused").await;
    // Accepted, then Meta's failed status (redelivered twice): the processor's delivery_failure.
    stack.enqueue(&with_channels("16505552002", "undelivered"), "undelivered").await;
    let sender = stack.sender(mechanics());
    stack.drain(&sender, 1, Duration::from_secs(60)).await;
    let outcomes = stack.outcomes().await;
    let accepted = outcomes.iter().find(|o| o["idempotency_key"] == "undelivered").unwrap();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(outcomes.iter().find(|o| o["idempotency_key"] == "refused").unwrap()["status"], "failed");
    let bsuid = stack.sim.bsuid_of("16505552002");
    let failed = failed_status(
        accepted["wamid"].as_str().unwrap(),
        "16505552002",
        &bsuid,
        "cb-undelivered",
        131_026,
        1_800_000_000,
    );
    for _ in 0..3 {
        p.post(&failed).await;
    }
    p.process(2).await;

    // The accepted send_result is not the fallback's business; the failed one and the failure are.
    let batch = fallback_batch(&stack.aws, &fallback_queue, 2).await;
    let handler = fallback_fn(&stack, &via_recorder, &from);
    for delivery in 0..3 {
        // The same messages three times: SQS's redelivery (or EventBridge's at-least-once).
        let response = handler.handle(&batch, now_ms() + 20_000).await;
        assert!(response.batch_item_failures.is_empty(), "delivery {delivery}: {response:?}");
    }

    let sms = recorder.calls_of(SNS_PUBLISH);
    let email = recorder.calls_of(SES_SEND_EMAIL);
    assert_eq!(sms.len(), 2, "one SMS per request: {sms:#?}");
    assert_eq!(email.len(), 2, "one e-mail per request: {email:#?}");
    for to in ["16505552001", "16505552002"] {
        assert_eq!(sms.iter().filter(|c| c.body.contains(&format!("PhoneNumber=%2B{to}"))).count(), 1, "{to}");
    }
    assert!(sms.iter().all(|c| c.body.contains("ACME")), "the sender id travels");
    for key in ["refused", "undelivered"] {
        assert_eq!(email.iter().filter(|c| c.body.contains(&format!("{key}@example.com"))).count(), 1, "{key}");
    }
    let events = stack.outcomes().await;
    let results = results(&events);
    let sent = |key: &str, channel: &str| results.get(&(key.to_owned(), channel.to_owned())).cloned();
    for key in ["refused", "undelivered"] {
        for channel in ["sms", "email"] {
            assert_eq!(sent(key, channel), Some(vec!["fallback_sent".to_owned()]), "{key} {channel}: {results:?}");
        }
    }
    let result = events.iter().find(|e| e["kind"] == "fallback_sent" && e["idempotency_key"] == "undelivered").unwrap();
    assert_eq!(result["trigger"], "delivery_failure");
    assert_eq!(result["callback_data"], "cb-undelivered");
    assert!(!result.to_string().contains("16505552002"), "no phone number in a result: {result}");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "delivery_failure").count(),
        1,
        "one failure for three deliveries"
    );
}

#[tokio::test]
async fn marketing_to_a_user_who_opted_out_gets_no_fallback() {
    let mut stack = SendStack::new(SimConfig::default()).await;
    let (bus, fallback_queue) = bus(&stack.aws, &stack.events).await;
    stack.bus = Some(bus.clone());
    let recorder = Recorder::start(&moto().endpoint).await;
    let via_recorder = sdk_config(&recorder.endpoint).await;
    let table = stack.table();
    let marketing = |to: &str, key: &str| {
        let mut request = with_channels(to, key);
        request["category"] = json!("marketing");
        request["message"] =
            json!({"type": "template", "template": {"name": "spring_sale", "language": {"code": "en"}}});
        request
    };
    // Sent while the user still took marketing, then the user wrote STOP, then Meta said it failed.
    stack.enqueue(&marketing("16505553001", "promo-sent"), "promo-sent").await;
    let sender = stack.sender(mechanics());
    stack.drain(&sender, 1, Duration::from_secs(60)).await;
    let outcome = stack.outcomes().await.into_iter().find(|o| o["idempotency_key"] == "promo-sent").unwrap();
    assert_eq!(outcome["status"], "accepted");
    let now_s = i64::try_from(now_ms() / 1000).unwrap();
    assert!(table.set_marketing_opt_out(PHONE, "16505553001", true, now_s).await.unwrap());
    let failure = DeliveryFailure::new(
        &FailedStatus { wamid: outcome["wamid"].as_str().unwrap(), code: Some(131_026), ..FailedStatus::default() },
        Some("promo-sent".into()),
        now_ms(),
    );
    EventBus::new(&stack.aws, &bus).publish(&[serde_json::to_string(&failure).unwrap()]).await.unwrap();
    // And one more after the opt-out: the sender refuses it (opted_out), which no rule routes.
    stack.enqueue(&marketing("16505553001", "promo-refused"), "promo-refused").await;
    let enforcing = stack.sender(sender::SenderConfig { enforce_conversation_rules: true, ..mechanics() });
    stack.drain(&enforcing, 1, Duration::from_secs(60)).await;

    let batch = fallback_batch(&stack.aws, &fallback_queue, 1).await;
    let handler = fallback_fn(&stack, &via_recorder, "nobody@example.com");
    for _ in 0..2 {
        assert!(handler.handle(&batch, now_ms() + 20_000).await.batch_item_failures.is_empty());
    }
    assert!(recorder.calls_of(SNS_PUBLISH).is_empty() && recorder.calls_of(SES_SEND_EMAIL).is_empty(), "nothing sent");
    let events = stack.outcomes().await;
    assert_eq!(
        events.iter().find(|o| o["idempotency_key"] == "promo-refused").map(|o| o["status"].clone()),
        Some(json!("opted_out"))
    );
    let results = results(&events);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[&("promo-sent".to_owned(), "-".to_owned())], ["fallback_skipped"]);
    let skipped = events.iter().find(|e| e["kind"] == "fallback_skipped").unwrap();
    assert!(skipped["reason"].as_str().unwrap().starts_with("opted_out"), "{skipped}");
}

#[tokio::test]
async fn an_unverified_sender_address_fails_the_email_once_and_is_not_retried() {
    let mut stack = SendStack::new(SimConfig::default()).await;
    let (bus, fallback_queue) = bus(&stack.aws, &stack.events).await;
    stack.bus = Some(bus);
    let recorder = Recorder::start(&moto().endpoint).await;
    let via_recorder = sdk_config(&recorder.endpoint).await;
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 131_026, http_status: 400 },
        count: 1,
        to: Some("16505554001".into()),
        endpoint: None,
    });
    stack.enqueue(&with_channels("16505554001", "unverified"), "unverified").await;
    stack.drain(&stack.sender(mechanics()), 1, Duration::from_secs(60)).await;
    let batch = fallback_batch(&stack.aws, &fallback_queue, 1).await;
    let handler = fallback_fn(&stack, &via_recorder, &format!("{}@not-verified.example.com", unique("x")));
    for _ in 0..2 {
        assert!(handler.handle(&batch, now_ms() + 20_000).await.batch_item_failures.is_empty());
    }
    assert_eq!(recorder.calls_of(SES_SEND_EMAIL).len(), 1, "refused once, never asked again");
    let events = stack.outcomes().await;
    let results = results(&events);
    assert_eq!(results[&("unverified".to_owned(), "sms".to_owned())], ["fallback_sent"]);
    assert_eq!(results[&("unverified".to_owned(), "email".to_owned())], ["fallback_failed"]);
    let failed = events.iter().find(|e| e["kind"] == "fallback_failed").unwrap();
    assert!(failed["reason"].as_str().unwrap().contains("MessageRejected"), "{failed}");
}

#[tokio::test]
async fn a_put_events_partial_failure_loses_nothing() {
    let aws = wa_tests::moto_config().await;
    let events_queue = create_queue(&aws, 262_144).await;
    let (bus, _) = bus(&aws, &events_queue).await;
    let recorder = Recorder::start(&moto().endpoint).await;
    let publisher = EventBus::new(&sdk_config(&recorder.endpoint).await, &bus);
    let bodies: Vec<String> =
        (0..12).map(|i| json!({"kind": "message", "phone_number_id": PHONE, "n": i}).to_string()).collect();

    // Two calls (10 + 2 entries): entries 1 and 3 of the first fail, then entry 0 of their retry.
    recorder.fail_put_events(vec![vec![1, 3], vec![], vec![0]]);
    publisher.publish(&bodies).await.unwrap();
    assert_eq!(recorder.calls_of(PUT_EVENTS).len(), 4, "two calls, then two retries");
    let mut got: Vec<i64> =
        parse(&drain_queue(&aws, &events_queue).await).iter().map(|e| e["n"].as_i64().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..12).collect::<Vec<_>>(), "every event once");

    // An entry that fails every attempt: the call is an error (the caller's batch item fails and is
    // redelivered), the others are delivered.
    // (Each retry offers only the failed entry, first in its call.)
    recorder.fail_put_events(vec![vec![2], vec![0], vec![0], vec![0]]);
    let error = publisher.publish(&bodies[..5]).await.unwrap_err();
    assert!(matches!(error, QueueError::Rejected { failed: 1, total: 5, .. }), "{error}");
    let got = parse(&drain_queue(&aws, &events_queue).await);
    assert_eq!(got.len(), 4, "the four others arrived");
    assert!(got.iter().all(|e| e["n"] != 2));
}

#[tokio::test]
async fn events_too_large_for_the_bus_are_refused_before_any_call() {
    let aws = wa_tests::moto_config().await;
    let recorder = Recorder::start(&moto().endpoint).await;
    let publisher = EventBus::new(&sdk_config(&recorder.endpoint).await, unique("bus"));
    let big = json!({"kind": "message", "x": "x".repeat(262_144)}).to_string();
    assert!(big.len() > publisher.max_message_bytes(), "the processor claim-checks such an event first");
    assert!(matches!(publisher.publish(&[big]).await, Err(QueueError::TooLarge { .. })));
    assert!(recorder.calls().is_empty());
    drop(aws);
}
