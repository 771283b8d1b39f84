//! One person under every id, end to end: webhooks → ingest → event processor → state table ←
//! sender → Cloud API simulator, all on moto and loopback. Meta names people by BSUID (and phone,
//! when it may); producers address them by phone (their CRM has phones) or BSUID.

use std::time::Duration;

use sender::SenderConfig;
use serde_json::{Value, json};
use wa_simulator::SimConfig;
use wa_tests::send_stack::{PHONE, SendStack, text_request};

use crate::processor::{Pipeline, webhook};

const USER_PHONE: &str = "16505551234";

fn now_s() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A text from a user, as Meta sends it in 2026: `phone` (with `from`/`wa_id`) when it may be
/// shared, the BSUID always.
pub(crate) fn user_writes(id: &str, phone: Option<&str>, bsuid: &str, text: &str, at: i64) -> Vec<u8> {
    let mut contact = json!({"profile": {"name": "Sheena"}, "user_id": bsuid});
    let mut message =
        json!({"from_user_id": bsuid, "id": id, "timestamp": at.to_string(), "type": "text", "text": {"body": text}});
    match phone {
        Some(phone) => {
            contact["wa_id"] = json!(phone);
            message["from"] = json!(phone);
        }
        None => contact["profile"]["username"] = json!("@sheena"),
    }
    webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
               "contacts": [contact], "messages": [message]}),
        "messages",
    )
}

pub(crate) fn failed_status(wamid: &str, phone: &str, bsuid: &str, callback: &str, code: i64, at: i64) -> Vec<u8> {
    webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "statuses": [{"id": wamid, "status": "failed", "timestamp": at.to_string(), "recipient_id": phone,
                             "recipient_user_id": bsuid, "biz_opaque_callback_data": callback,
                             "errors": [{"code": code, "title": "Message undeliverable", "message": "Message undeliverable",
                                         "error_data": {"details": "injected by the test"}}]}]}),
        "messages",
    )
}

/// A sender on the pipeline's state table, sending to a fresh simulator, with the conversation
/// rules on.
async fn sender_on(p: &Pipeline) -> (SendStack, wa_tests::send_stack::TestSender) {
    let mut stack = SendStack::new(SimConfig::default()).await;
    stack.table.clone_from(&p.table_name);
    let sender = stack.sender(SenderConfig::default());
    (stack, sender)
}

fn marketing(to: &str, key: &str) -> Value {
    json!({"phone_number_id": PHONE, "to": to, "idempotency_key": key, "category": "marketing",
           "message": {"type": "template", "template": {"name": "spring_sale", "language": {"code": "en_US"}}}})
}

/// Sends `requests` through the sender; returns the outcomes by idempotency key.
async fn send(stack: &SendStack, sender: &wa_tests::send_stack::TestSender, requests: &[Value]) -> Vec<Value> {
    for (i, request) in requests.iter().enumerate() {
        stack.enqueue(request, &format!("{}-{i}", request["idempotency_key"].as_str().unwrap())).await;
    }
    stack.drain(sender, 1, Duration::from_secs(30)).await;
    let outcomes = stack.outcomes().await;
    for outcome in &outcomes {
        wa_tests::assert_events_queue_message(outcome);
    }
    requests
        .iter()
        .map(|r| outcomes.iter().find(|o| o["idempotency_key"] == r["idempotency_key"]).cloned().expect("an outcome"))
        .collect()
}

#[tokio::test]
async fn replies_consent_and_a_number_change_follow_the_person_across_ids() {
    let p = Pipeline::new().await;
    let (stack, sender) = sender_on(&p).await;
    let bsuid = stack.sim.bsuid_of(USER_PHONE);
    let now = now_s();

    // The user writes; Meta names them by phone and BSUID.
    p.post(&user_writes("wamid.in1", Some(USER_PHONE), &bsuid, "Where is my order?", now - 60)).await;
    p.process(1).await;
    // A reply by phone (what the CRM has) and one by BSUID: both inside the window, both sent.
    let outcomes = send(
        &stack,
        &sender,
        &[text_request(USER_PHONE, "It ships today", "by-phone"), text_request(&bsuid, "Tracking: 42", "by-bsuid")],
    )
    .await;
    assert_eq!(outcomes[0]["status"], "accepted", "{outcomes:?}");
    assert_eq!(outcomes[1]["status"], "accepted", "{outcomes:?}");
    let bodies: Vec<Value> = stack.sim.accepted().into_iter().map(|a| a.body).collect();
    assert!(
        bodies.iter().any(|b| b["recipient"] == json!(bsuid) && b.get("to").is_none()),
        "a BSUID goes as recipient"
    );

    // STOP under the BSUID alone (a username user's webhook has no phone): marketing refused
    // under both ids, with no Graph call.
    p.post(&user_writes("wamid.in2", None, &bsuid, "STOP", now - 30)).await;
    p.process(1).await;
    let report =
        wa_cli::stats(&p.table, PHONE, Some(USER_PHONE), "2026-12", now, None, &Default::default()).await.unwrap();
    assert!(report.contains("known by 2 id(s): phone number, BSUID"), "{report}");
    assert!(report.contains("username: @sheena") && report.contains("marketing: opted out"), "{report}");
    let calls = stack.sim.accepted_count();
    let outcomes =
        send(&stack, &sender, &[marketing(USER_PHONE, "promo-phone"), marketing(&bsuid, "promo-bsuid")]).await;
    assert_eq!(outcomes[0]["status"], "opted_out", "{outcomes:?}");
    assert_eq!(outcomes[1]["status"], "opted_out", "{outcomes:?}");
    assert_eq!(stack.sim.accepted_count(), calls, "no marketing reached the Graph API");

    // The user changes number: Meta's system message, from the old phone.
    let new_phone = "12195555358";
    let new_bsuid = stack.sim.bsuid_of(new_phone);
    let change = webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "messages": [{"from": USER_PHONE, "id": "wamid.sys1", "timestamp": (now - 10).to_string(), "type": "system",
                             "system": {"body": "User changed number", "wa_id": new_phone, "user_id": new_bsuid,
                                        "previous_user_id": bsuid, "type": "user_changed_number"}}]}),
        "messages",
    );
    p.post(&change).await;
    p.process(1).await;
    let outcomes = send(
        &stack,
        &sender,
        &[
            text_request(new_phone, "Welcome back", "new-phone-reply"),
            marketing(new_phone, "promo-new-phone"),
            text_request(USER_PHONE, "Hello?", "old-phone-reply"),
        ],
    )
    .await;
    assert_eq!(outcomes[0]["status"], "accepted", "the window follows the person: {outcomes:?}");
    assert_eq!(outcomes[1]["status"], "opted_out", "the opt-out follows the person: {outcomes:?}");
    assert_eq!(outcomes[2]["status"], "window_closed", "the old phone is no longer theirs: {outcomes:?}");

    // The forwarded events carry the person's conversation, and validate as consumers get them.
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), 3);
    for event in &forwarded {
        wa_tests::assert_events_queue_message(event);
        assert_eq!(event["conversation"]["marketing_opt_out"], event["event_id"] != "wamid.in1", "{event}");
    }
}

#[tokio::test]
async fn a_failed_status_after_accepted_is_exactly_one_delivery_failure() {
    let p = Pipeline::new().await;
    let (stack, sender) = sender_on(&p).await;
    let bsuid = stack.sim.bsuid_of(USER_PHONE);
    let now = now_s();
    p.post(&user_writes("wamid.in1", Some(USER_PHONE), &bsuid, "Hi", now - 60)).await;
    p.process(1).await;
    p.forwarded().await;

    let outcomes = send(&stack, &sender, &[text_request(USER_PHONE, "Your lab report is ready", "lab-42")]).await;
    assert_eq!(outcomes[0]["status"], "accepted");
    let wamid = outcomes[0]["wamid"].as_str().unwrap().to_owned();

    // Meta says it failed, and redelivers the webhook; three processors see each delivery.
    let failed = failed_status(&wamid, USER_PHONE, &bsuid, "cb-lab-42", 131_026, now);
    for _ in 0..3 {
        p.post(&failed).await;
    }
    p.process(3).await;
    let forwarded = p.forwarded().await;
    let failures: Vec<&Value> = forwarded.iter().filter(|e| e["kind"] == "delivery_failure").collect();
    assert_eq!(failures.len(), 1, "{forwarded:#?}");
    assert_eq!(forwarded.iter().filter(|e| e["kind"] == "status").count(), 1, "the status itself, once");
    let failure = failures[0];
    wa_tests::assert_events_queue_message(failure);
    assert_eq!(failure["idempotency_key"], "lab-42");
    assert_eq!(failure["callback_data"], "cb-lab-42");
    assert_eq!(failure["wamid"], json!(wamid));
    assert_eq!(failure["error"]["code"], 131_026);
    assert_eq!(failure["error"]["class"], "permanent");

    // 131047 in a failed status closes the window: the next free-form message is refused before
    // any Graph call.
    let outcomes = send(&stack, &sender, &[text_request(USER_PHONE, "One more thing", "late")]).await;
    let wamid = outcomes[0]["wamid"].as_str().unwrap().to_owned();
    p.post(&failed_status(&wamid, USER_PHONE, &bsuid, "cb-late", 131_047, now + 1)).await;
    p.process(1).await;
    let failure = p.forwarded().await.into_iter().find(|e| e["kind"] == "delivery_failure").unwrap();
    assert_eq!(failure["idempotency_key"], "late");
    let calls = stack.sim.accepted_count();
    let outcomes = send(&stack, &sender, &[text_request(&bsuid, "Still there?", "after-131047")]).await;
    assert_eq!(outcomes[0]["status"], "window_closed", "{outcomes:?}");
    assert_eq!(stack.sim.accepted_count(), calls);
}

#[tokio::test]
async fn uninterpretable_payloads_reach_consumers_unchanged_and_touch_no_state() {
    let p = Pipeline::new().await;
    let odd = webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "statuses": [{"id": "wamid.nostatus", "timestamp": "1750000000", "recipient_id": USER_PHONE,
                             "pricing": {"billable": true, "category": "marketing", "type": "regular"}}],
               "messages": [{"from": USER_PHONE, "id": "wamid.notype", "timestamp": "1750000000", "text": {"body": "STOP"}}]}),
        "messages",
    );
    p.post(&odd).await;
    p.process(1).await; // asserts that no record failed (nothing goes toward the DLQ)
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), 2, "{forwarded:#?}");
    for event in &forwarded {
        wa_tests::assert_events_queue_message(event);
        assert!(event.get("conversation").is_none(), "state untouched, so no conversation: {event}");
    }
    assert_eq!(forwarded.iter().find(|e| e["kind"] == "status").unwrap()["payload"]["id"], "wamid.nostatus");
    assert_eq!(p.table.message_status("wamid.nostatus").await.unwrap(), None);
    assert!(p.table.costs(PHONE, "2025-06").await.unwrap().is_empty(), "not counted");
    let person = wa_core::identity::resolve(&p.table, PHONE, USER_PHONE).await.unwrap();
    assert!(!person.known, "a STOP without a type opts nobody out");
}

#[tokio::test]
async fn every_2026_payload_is_processed_and_forwarded() {
    let p = Pipeline::new().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meta2026");
    let mut expected = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|f| f.extension().is_some_and(|x| x == "json"));
    files.sort();
    for file in &files {
        let body = std::fs::read(file).unwrap();
        expected += wa_core::event::split_webhook(&body, 0).unwrap().len();
        p.post(&body).await;
    }
    assert!(files.len() >= 19);
    p.process(1).await;
    let forwarded = p.forwarded().await;
    // Every event once, plus one delivery failure (the failed status; not sent through this
    // pipeline, so without a key).
    let failures: Vec<&Value> = forwarded.iter().filter(|e| e["kind"] == "delivery_failure").collect();
    assert_eq!(forwarded.len(), expected + failures.len());
    assert_eq!(failures.len(), 1);
    assert!(failures[0]["idempotency_key"].is_null());
    assert_eq!(failures[0]["error"]["code"], 131_049);
    for event in &forwarded {
        wa_tests::assert_events_queue_message(event);
    }
    // Both spellings of the international authentication category land on one counter.
    let ledger = p.table.costs(PHONE, "2026-09").await.unwrap();
    let count = |key: &str| ledger.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
    assert_eq!(count("authentication_international#regular"), 2, "{ledger:?}");
    assert_eq!(count("marketing_lite#regular"), 1, "{ledger:?}");
    assert_eq!(count("group_marketing#regular"), 1, "{ledger:?}");
    // The username user is the phone user: linked by the statuses' contacts.
    let person = wa_core::identity::resolve(&p.table, PHONE, "US.13491208655302741918").await.unwrap();
    assert!(person.ids.contains(&"US.ENT.11815799212886844830".to_owned()), "{:?}", person.ids);
    assert!(person.facts.marketing_opt_out, "user_preferences stop by user_id");
    // After both identity changes the newest BSUID reaches the person's history.
    let newest = wa_core::identity::resolve(&p.table, PHONE, "US.77712093845610293847").await.unwrap();
    assert!(newest.ids.contains(&"US.13491208655302741918".to_owned()), "{:?}", newest.ids);
    assert!(newest.ids.contains(&"12195555358".to_owned()));
    assert!(!newest.ids.contains(&"16505551234".to_owned()), "the old phone was given up");
    assert!(newest.facts.marketing_opt_out);
}
