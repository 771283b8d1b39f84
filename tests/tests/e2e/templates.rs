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

#[tokio::test]
async fn push_review_webhook_send_pull_and_delete_against_the_simulator() {
    let p = Pipeline::new().await;
    let url = crate::simulator::serve_ingest(p.stack.ingest()).await;
    let config =
        SimConfig { webhook_url: Some(url), app_secret: crate::stack::APP_SECRET.into(), ..SimConfig::default() };
    let mut stack = SendStack::new(config).await;
    stack.table.clone_from(&p.table_name);
    let sender = stack.sender(mechanics());
    let api = wa_cli::templates::TemplateApi {
        base: stack.sim.base_url(),
        version: "v25.0".into(),
        waba_id: "102290129340398".into(),
        token: "sim-access-token".into(),
    };
    let dir = std::env::temp_dir().join(format!("wa-templates-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("order_update.json");
    let template = json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today.", "example": {"body_text": [["Ana", "42"]]}}]});
    std::fs::write(&file, template.to_string()).unwrap();

    let (report, failed) = api.push(std::slice::from_ref(&file), false).await.unwrap();
    assert!(!failed && report.contains("order_update (en_US): created: PENDING"), "{report}");
    let (report, _) = api.push(std::slice::from_ref(&file), false).await.unwrap();
    assert!(report.contains("unchanged: not re-submitted"), "{report}");
    // The review's webhook reaches the pipeline: APPROVED in the registry.
    let mut approved = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.process(1).await;
        let facts = wa_core::ports::ConversationStore::template(&p.table, "order_update", "en_US").await.unwrap();
        if facts.and_then(|f| f.status).as_deref() == Some("APPROVED") {
            approved = true;
            break;
        }
    }
    assert!(approved, "the approval webhook reached the registry");
    let ok = outcome(&stack, &sender, &send("push-ok", &["Ana", "42"])).await;
    assert_eq!(ok["status"], "accepted", "{ok}");
    // The simulator checks sends of templates it knows: the wrong count is 132000.
    let wrong = outcome(&stack, &sender, &send("push-wrong", &["Ana"])).await;
    assert_eq!(wrong["error"]["code"], 132_000, "{wrong}");

    // Edited in the file: a dry run says so and changes nothing.
    let mut edited = template.clone();
    edited["components"][0]["text"] = json!("Hello {{1}}, your order {{2}} ships today.");
    std::fs::write(&file, edited.to_string()).unwrap();
    let (report, _) = api.push(std::slice::from_ref(&file), true).await.unwrap();
    assert!(report.contains("would edit (now APPROVED)"), "{report}");
    // A template Meta would reject is not pushed at all.
    std::fs::write(
        dir.join("bad.json"),
        json!({"name": "Bad Name", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "{{1}} ships"}]})
        .to_string(),
    )
    .unwrap();
    let (report, failed) = api.push(&[dir.join("bad.json")], false).await.unwrap();
    assert!(failed && report.contains("not pushed, lint errors: name.format"), "{report}");

    // Paused by Meta: the webhook reaches the registry and the next send is refused before any call.
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{}/_sim/templates/order_update/en_US", stack.sim.base_url()))
        .json(&json!({"event": "PAUSED"}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    p.process(1).await;
    let calls = stack.sim.seen().len();
    let paused = outcome(&stack, &sender, &send("push-paused", &["Ana", "42"])).await;
    assert!(paused["error"]["reason"].as_str().unwrap().contains("PAUSED"), "{paused}");
    assert_eq!(stack.sim.seen().len(), calls);

    let pulled = dir.join("pulled");
    assert!(api.pull(&pulled).await.unwrap().starts_with("1 template(s)"));
    // Pull fills the registry too: status and parameter counts from Meta's list.
    let fresh = wa_tests::create_state_table(&stack.aws).await;
    let registry = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&stack.aws), fresh);
    assert!(api.record(&registry).await.unwrap().starts_with("1 template(s) recorded"));
    let facts = wa_core::ports::ConversationStore::template(&registry, "order_update", "en_US").await.unwrap().unwrap();
    assert_eq!((facts.status.as_deref(), facts.body_params, facts.header_params), (Some("PAUSED"), Some(2), Some(0)));
    let back: Value =
        serde_json::from_str(&std::fs::read_to_string(pulled.join("order_update.en_US.json")).unwrap()).unwrap();
    assert_eq!(back["components"], template["components"]);
    assert!(api.status().await.unwrap().contains("order_update (en_US): PAUSED UTILITY"));
    api.delete("order_update", None).await.unwrap();
    assert_eq!(api.status().await.unwrap(), "no templates\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
