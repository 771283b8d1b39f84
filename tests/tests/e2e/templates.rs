//! The template registry end to end: template webhooks → ingest → event processor → state table ←
//! sender → simulator. A paused template and a send with the wrong parameter count are refused with
//! no Graph call; Meta's 132016 teaches the registry; unknown templates are refused when asked.

use std::time::Duration;

use sender::SenderConfig;
use serde_json::{Value, json};
use wa_simulator::{Fault, FaultKind, SimConfig};
use wa_tests::send_stack::{PHONE, SendStack, mechanics};

use crate::processor::{Pipeline, webhook};

fn template_webhook(field: &str, value: Value) -> Vec<u8> {
    webhook(value, field)
}

fn status(event: &str) -> Vec<u8> {
    template_webhook(
        "message_template_status_update",
        json!({"event": event, "message_template_id": 1_689_556_908_129_835_u64, "message_template_name": "order_update",
               "message_template_language": "en_US", "reason": null, "message_template_category": "UTILITY"}),
    )
}

fn send(key: &str, parameters: &[&str]) -> Value {
    let parameters: Vec<Value> = parameters.iter().map(|p| json!({"type": "text", "text": p})).collect();
    json!({"phone_number_id": PHONE, "to": "16505558001", "idempotency_key": key,
           "message": {"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
                        "components": [{"type": "body", "parameters": parameters}]}}})
}

async fn outcome(stack: &SendStack, sender: &wa_tests::send_stack::TestSender, request: &Value) -> Value {
    let key = request["idempotency_key"].as_str().unwrap();
    stack.enqueue(request, key).await;
    stack.drain(sender, 1, Duration::from_secs(20)).await;
    let outcomes = stack.outcomes().await;
    outcomes.into_iter().find(|o| o["idempotency_key"] == key).expect("an outcome")
}

#[tokio::test]
async fn the_registry_follows_the_webhooks_and_the_sender_checks_sends_against_it() {
    let p = Pipeline::new().await;
    let mut stack = SendStack::new(SimConfig::default()).await;
    stack.table.clone_from(&p.table_name);
    let sender = stack.sender(mechanics());

    // Approved, and its body takes two parameters.
    p.post(&status("APPROVED")).await;
    p.post(&template_webhook(
        "message_template_components_update",
        json!({"message_template_id": 1_689_556_908_129_835_u64, "message_template_name": "order_update",
               "message_template_language": "en_US", "message_template_element": "Hi {{1}}, order {{2}} ships today."}),
    ))
    .await;
    p.process(1).await;
    let facts = wa_core::ports::ConversationStore::template(&p.table, "order_update", "en_US").await.unwrap().unwrap();
    assert_eq!(
        (facts.status.as_deref(), facts.body_params, facts.category.as_deref()),
        (Some("APPROVED"), Some(2), Some("utility"))
    );

    let ok = outcome(&stack, &sender, &send("t-ok", &["Ana", "42"])).await;
    assert_eq!(ok["status"], "accepted", "{ok}");
    let calls = stack.sim.seen().len();
    let wrong = outcome(&stack, &sender, &send("t-count", &["Ana"])).await;
    assert_eq!(wrong["status"], "failed");
    assert!(wrong["error"]["reason"].as_str().unwrap().starts_with("template_parameters"), "{wrong}");
    assert_eq!(stack.sim.seen().len(), calls, "no Graph call");

    // Paused by Meta: refused before any Graph call, until it is approved again.
    p.post(&status("PAUSED")).await;
    p.process(1).await;
    let paused = outcome(&stack, &sender, &send("t-paused", &["Ana", "42"])).await;
    assert!(paused["error"]["reason"].as_str().unwrap().starts_with("template_not_approved"), "{paused}");
    assert_eq!(stack.sim.seen().len(), calls, "no Graph call");

    // Approved again, then Meta says disabled (132016): the registry learns it from the answer.
    p.post(&template_webhook(
        "message_template_status_update",
        json!({"event": "REINSTATED", "message_template_name": "order_update", "message_template_language": "en_US"}),
    ))
    .await;
    p.process(1).await;
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 132_016, http_status: 400 },
        count: 1,
        to: None,
        endpoint: None,
    });
    let disabled = outcome(&stack, &sender, &send("t-disabled", &["Ana", "42"])).await;
    assert_eq!(disabled["error"]["code"], 132_016);
    let after = outcome(&stack, &sender, &send("t-after", &["Ana", "42"])).await;
    assert!(after["error"]["reason"].as_str().unwrap().contains("DISABLED"), "{after}");
    assert_eq!(stack.sim.seen().len(), calls + 1, "only the send Meta answered 132016");

    // Templates the registry has never seen: sent by default, refused when configured so.
    let strict = stack.sender(SenderConfig { refuse_unknown_templates: true, ..mechanics() });
    let mut unknown = send("t-unknown", &[]);
    unknown["message"]["template"]["name"] = json!("never_seen");
    let refused = outcome(&stack, &strict, &unknown).await;
    assert!(refused["error"]["reason"].as_str().unwrap().starts_with("template_unknown"), "{refused}");
    for outcome in [&ok, &wrong, &paused, &disabled, &after, &refused] {
        wa_tests::assert_events_queue_message(outcome);
    }
}
