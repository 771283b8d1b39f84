//! The sender against SQS FIFO, DynamoDB and Secrets Manager on moto, and the Cloud API simulator.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sender::SenderConfig;
use serde_json::{Value, json};
use wa_core::ports::HoldStore;
use wa_infra::dynamo::StateTable;
use wa_simulator::{Fault, FaultKind, SimConfig};
use wa_tests::send_stack::{PHONE, SendStack, mechanics, now_ms, secret, text_request};
use wa_tests::{esm, repo_root};

fn send_examples() -> Vec<(String, Value)> {
    let dir = repo_root().join("fixtures/meta/send");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn all_50_spec_examples_reach_the_graph_api_unchanged() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let request_schema = wa_tests::schema("send-request.v1.json");
    let result_schema = wa_tests::schema("send-result.v1.json");
    let mut expected = BTreeMap::new();
    for (i, (name, example)) in send_examples().into_iter().enumerate() {
        let mut message = example.as_object().unwrap().clone();
        let to = message.remove("to").map(|_| format!("1650555{i:04}"));
        message.remove("messaging_product");
        message.remove("recipient_type");
        let mut request = json!({"phone_number_id": PHONE, "message": message, "idempotency_key": name});
        let mut body = example.clone();
        if let Some(to) = &to {
            request["to"] = json!(to);
            body["to"] = json!(to);
            body["recipient_type"] = json!("individual");
        }
        if let Err(error) = request_schema.validate(&request) {
            panic!("{name}: the request does not match schemas/send-request.v1.json: {error}");
        }
        stack.enqueue(&request, &name).await;
        expected.insert(name, body);
    }
    stack.drain(&sender, 2, Duration::from_secs(60)).await;

    let accepted = stack.sim.accepted();
    assert_eq!(accepted.len(), 50, "one Graph call per example");
    let mut bodies: Vec<Value> = accepted.iter().map(|a| a.body.clone()).collect();
    for (name, body) in &expected {
        let position =
            bodies.iter().position(|b| b == body).unwrap_or_else(|| panic!("{name}: not sent as the example shows"));
        bodies.remove(position);
    }
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 50, "exactly one outcome per request");
    for outcome in &outcomes {
        assert!(result_schema.validate(outcome).is_ok(), "{outcome}");
        assert_eq!(outcome["kind"], "send_result");
        assert_eq!(outcome["status"], "accepted", "{outcome}");
        assert!(expected.contains_key(outcome["idempotency_key"].as_str().unwrap()));
    }
    let with_wamid = outcomes.iter().filter(|o| o["wamid"].as_str().is_some_and(|w| w.starts_with("wamid."))).count();
    assert_eq!(with_wamid, 49, "every message but the read receipt has a wamid");
}

#[tokio::test]
async fn invalid_requests_fail_permanently_without_a_graph_call() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let four_buttons: Vec<Value> =
        (0..4).map(|i| json!({"type":"reply","reply":{"id":format!("b{i}"),"title":"t"}})).collect();
    let rows: Vec<Value> = (0..11).map(|i| json!({"id":format!("r{i}"),"title":"row"})).collect();
    let cases = [
        (json!({"type":"text","text":{"body":"x".repeat(4097)}}), "16505550001", "text.body.length"),
        (
            json!({"type":"interactive","interactive":{"type":"button","body":{"text":"b"},"action":{"buttons":four_buttons}}}),
            "16505550002",
            "interactive.button.count",
        ),
        (
            json!({"type":"interactive","interactive":{"type":"list","body":{"text":"b"},"action":{"button":"Menu","sections":[{"title":"s","rows":rows}]}}}),
            "16505550003",
            "interactive.list.rows",
        ),
        (json!({"type":"text","text":{"body":"hi"}}), "12", "to.format"),
    ];
    for (i, (message, to, _)) in cases.iter().enumerate() {
        let request =
            json!({"phone_number_id": PHONE, "to": to, "message": message, "idempotency_key": format!("bad-{i}")});
        stack.enqueue(&request, &format!("bad-{i}")).await;
    }
    let mut long_callback = text_request("16505550004", "hi", "bad-callback");
    long_callback["callback_data"] = json!("c".repeat(513));
    stack.enqueue(&long_callback, "bad-callback").await;
    stack
        .sqs
        .send_message()
        .queue_url(&stack.outbound)
        .message_body("{not json")
        .message_group_id("junk")
        .message_deduplication_id("junk")
        .send()
        .await
        .unwrap();
    stack.drain(&sender, 1, Duration::from_secs(30)).await;

    assert!(stack.sim.seen().is_empty(), "no Graph call for an invalid request");
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 6);
    let reasons: HashMap<String, String> = outcomes
        .iter()
        .map(|o| (o["idempotency_key"].as_str().unwrap().to_owned(), o["error"]["reason"].as_str().unwrap().to_owned()))
        .collect();
    for (i, (_, _, rule)) in cases.iter().enumerate() {
        assert!(reasons[&format!("bad-{i}")].starts_with(rule), "{rule}: {reasons:?}");
    }
    assert!(reasons["bad-callback"].starts_with("callback_data.length"));
    assert!(outcomes.iter().all(|o| o["status"] == "failed" && o["error"]["class"] == "permanent"));
    let result_schema = wa_tests::schema("send-result.v1.json");
    assert!(outcomes.iter().all(|o| result_schema.validate(o).is_ok()));
    // The schema refuses what the sender refuses structurally.
    let request_schema = wa_tests::schema("send-request.v1.json");
    assert!(request_schema.validate(&long_callback).is_err());
    assert!(
        request_schema.validate(&json!({"phone_number_id": PHONE, "to": "12", "message": {"type": "text"}})).is_err()
    );
    assert!(request_schema.validate(&text_request("16505550004", "hi", "k")).is_ok());
    let junk = outcomes.iter().find(|o| o["idempotency_key"].as_str().unwrap().starts_with("sqs:")).unwrap();
    assert!(junk["error"]["reason"].as_str().unwrap().starts_with("request.json"));
}

#[tokio::test]
async fn error_classes_end_as_they_should() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(SenderConfig { throttle_delay_s: 1, ..mechanics() });
    let fault = |code: i64, to: &str| Fault {
        kind: FaultKind::Error { code, http_status: 400 },
        count: 1,
        to: Some(to.into()),
        endpoint: None,
    };
    // Permanent: recipient not on WhatsApp.
    stack.sim.inject(fault(131_026, "16505551001"));
    // Retryable: throughput and a transient failure, then accepted.
    stack.sim.inject(fault(130_429, "16505551002"));
    stack.sim.inject(fault(131_000, "16505551003"));
    // Pair rate: that recipient backs off (4^0 = 1 s); others go on.
    stack.sim.inject(fault(131_056, "16505551004"));
    for (i, to) in ["16505551001", "16505551002", "16505551003", "16505551004", "16505551005"].iter().enumerate() {
        stack.enqueue(&text_request(to, "hello", &format!("k{i}")), &format!("k{i}")).await;
    }
    stack.drain(&sender, 1, Duration::from_secs(60)).await;

    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 5, "{outcomes:#?}");
    let by_key: HashMap<&str, &Value> = outcomes.iter().map(|o| (o["idempotency_key"].as_str().unwrap(), o)).collect();
    assert_eq!(by_key["k0"]["status"], "failed");
    assert_eq!(by_key["k0"]["error"]["code"], 131_026);
    assert_eq!(by_key["k0"]["error"]["class"], "permanent");
    assert_eq!(by_key["k0"]["callback_data"], "cb-k0");
    for key in ["k1", "k2", "k3", "k4"] {
        assert_eq!(by_key[key]["status"], "accepted", "{key}");
    }
    let seen = stack.sim.seen();
    let codes: Vec<Option<i64>> = seen.iter().map(|s| s.code).collect();
    for code in [131_026, 130_429, 131_000, 131_056] {
        assert!(codes.contains(&Some(code)), "{code} was injected and seen");
    }
    assert_eq!(stack.sim.accepted_count(), 4, "each retried request sent once more, nothing twice");
}

#[tokio::test]
async fn an_expired_token_is_reloaded_and_the_send_retried_once() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    stack.enqueue(&text_request("16505552001", "one", "t1"), "t1").await;
    stack.drain(&sender, 1, Duration::from_secs(20)).await;
    // The token is rotated: Meta now refuses the cached one (190); the secret holds the new one.
    stack.sim.configure(|c| c.access_token = "rotated-token".into());
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(secret("rotated-token"))
        .send()
        .await
        .unwrap();
    stack.enqueue(&text_request("16505552002", "two", "t2"), "t2").await;
    stack.drain(&sender, 1, Duration::from_secs(20)).await;
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o["status"] == "accepted"));
    let codes: Vec<Option<i64>> = stack.sim.seen().iter().map(|s| s.code).collect();
    assert_eq!(codes, [None, Some(190), None]);
}

/// The next batch of the outbound queue, waiting up to `limit` for one to become visible.
async fn receive_within(stack: &SendStack, limit: Duration) -> esm::Batch {
    let started = std::time::Instant::now();
    loop {
        if let Some(batch) = esm::receive(&stack.sqs, &stack.outbound).await {
            return batch;
        }
        assert!(started.elapsed() < limit, "nothing visible within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Makes a batch's messages visible again at once, as if their redelivery delay had passed.
async fn make_visible(stack: &SendStack, batch: &esm::Batch) {
    for record in &batch.event.records {
        let _ = stack
            .sqs
            .change_message_visibility()
            .queue_url(&stack.outbound)
            .receipt_handle(record.receipt_handle.clone().unwrap())
            .visibility_timeout(0)
            .send()
            .await;
    }
}

#[tokio::test]
async fn account_blocks_and_dead_tokens_stop_the_line_and_lose_nothing() {
    let stack = SendStack::new(SimConfig::default()).await;
    // Slots 250 ms apart: the block is known long before the next slot, even on a busy machine.
    let sender = stack.sender(SenderConfig { default_rate: 4, ..mechanics() });
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 368, http_status: 400 },
        count: 1,
        to: None,
        endpoint: None,
    });
    for i in 0..5 {
        stack.enqueue(&text_request(&format!("1650555300{i}"), "hi", &format!("s{i}")), &format!("s{i}")).await;
    }
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    // The first send meets the block; the records waiting for their slots do not send after it.
    // All are reported for retry and none ends with an outcome.
    let sent_before_stop = stack.sim.accepted_count();
    assert!(sent_before_stop <= 1, "records waiting for their slots do not send after the stop: {sent_before_stop}");
    assert_eq!(response.batch_item_failures.len(), batch.event.records.len() - sent_before_stop);
    esm::settle(&stack.sqs, &stack.outbound, &batch, &response).await;

    // The block holds the number beyond this batch: the next batches defer every request (no Graph
    // call, nothing dead-lettered) until the cool-down ends.
    let table = stack.table();
    let hold = table.hold(PHONE).await.unwrap().expect("the number is held");
    assert_eq!((hold.code, hold.strikes), (368, 1));
    let cool_down = hold.until_ms - now_ms();
    assert!((290_000..=300_000).contains(&cool_down), "{cool_down} ms");
    let calls = stack.sim.seen().len();
    let batch = receive_within(&stack, Duration::from_secs(10)).await; // after the visibility timeout
    let remaining = batch.event.records.len();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(response.batch_item_failures.len(), remaining, "all deferred");
    assert_eq!(stack.sim.seen().len(), calls, "no Graph call while held");
    assert!(esm::receive(&stack.sqs, &stack.outbound).await.is_none(), "deferred to the end of the hold");
    let listed = wa_cli::hold::describe(&table.holds().await.unwrap(), now_ms());
    assert!(listed.contains(&format!("{PHONE}: held since")) && listed.contains("code 368"), "{listed}");

    // The cool-down ends (time passes: the hold and the messages' delays are moved to now); one
    // request probes, meets the block again: held again, for longer.
    let expire = |hold: wa_core::hold::Hold| wa_core::hold::Hold { until_ms: now_ms() - 1, ..hold };
    assert!(table.put_hold(PHONE, &expire(hold.clone()), 1).await.unwrap());
    make_visible(&stack, &batch).await;
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 368, http_status: 400 },
        count: 1,
        to: None,
        endpoint: None,
    });
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(stack.sim.seen().len(), calls + 1, "one probe");
    assert_eq!(response.batch_item_failures.len(), batch.event.records.len());
    let again = table.hold(PHONE).await.unwrap().unwrap();
    assert_eq!((again.strikes, again.since_ms), (2, hold.since_ms));
    assert!(again.until_ms - now_ms() > 800_000, "15 minutes now");

    // The next probe goes through: the hold is cleared and everything is sent, once.
    assert!(table.put_hold(PHONE, &expire(again), 2).await.unwrap());
    make_visible(&stack, &batch).await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(stack.sim.accepted_count(), 1, "one probe, accepted");
    assert_eq!(table.hold(PHONE).await.unwrap(), None, "cleared");
    assert_eq!(response.batch_item_failures.len(), batch.event.records.len() - 1, "the rest wait for the probe");
    esm::settle(&stack.sqs, &stack.outbound, &batch, &response).await;
    make_visible(&stack, &batch).await;
    stack.drain(&sender, 1, Duration::from_secs(30)).await;
    assert_eq!(stack.outcomes().await.len(), 5);
    assert_eq!(stack.sim.accepted_count(), 5);

    // An operator clears a hold by hand.
    let manual = wa_core::hold::next_hold(None, 131_042, now_ms());
    assert!(table.put_hold(PHONE, &manual, 0).await.unwrap());
    let report = wa_cli::hold::clear(&table, PHONE).await.unwrap();
    assert!(report.contains("hold cleared (code 131042"), "{report}");
    assert_eq!(table.hold(PHONE).await.unwrap(), None);

    // A token refused even after reloading the secret: nothing is sent, nothing is dropped.
    stack.sim.configure(|c| c.access_token = "a-token-we-do-not-have".into());
    stack.enqueue(&text_request("16505553009", "hi", "dead"), "dead").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    esm::settle(&stack.sqs, &stack.outbound, &batch, &response).await;
    assert!(stack.outcomes().await.is_empty());
    assert_eq!(esm::remaining(&stack.sqs, &stack.outbound).await, 1, "still queued");
}

#[tokio::test]
async fn duplicate_deliveries_make_one_graph_call_and_one_outcome() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    stack.enqueue(&text_request("16505554001", "once", "dup"), "dup").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    // SQS delivers the same record twice, concurrently, then once more later.
    let deadline = now_ms() + 30_000;
    let (a, b) = tokio::join!(sender.handle(&batch.event, deadline), sender.handle(&batch.event, deadline));
    let retried = a.batch_item_failures.len() + b.batch_item_failures.len();
    assert!(retried <= 1, "the loser of the claim retries later");
    let again = sender.handle(&batch.event, deadline).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(stack.sim.accepted_count(), 1, "one Graph call");
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 1, "one outcome");

    // The message leads back to its send request (operators: `wa stats --message`).
    let table = StateTable::new(aws_sdk_dynamodb::Client::new(&stack.aws), stack.table.clone());
    let wamid = outcomes[0]["wamid"].as_str().unwrap();
    let report = wa_cli::message(&table, wamid).await.unwrap();
    assert!(
        report.contains(&format!("send request: {}", outcomes[0]["idempotency_key"].as_str().unwrap())),
        "{report}"
    );
    assert!(report.contains("status: none received yet"), "{report}");
    let report = wa_cli::message(&table, "wamid.unknown").await.unwrap();
    assert!(report.contains("unknown"), "{report}");
}

#[tokio::test]
async fn ambiguous_sends_are_counted_and_retried_only_after_the_claim_expires() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    // Meta accepts the message but the response never arrives in time.
    stack.sim.inject(Fault {
        kind: FaultKind::Delay { millis: 3000, accepted: true },
        count: 1,
        to: None,
        endpoint: None,
    });
    stack.enqueue(&text_request("16505555001", "maybe", "amb"), "amb").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let claim_until = now_ms() + 4000;
    let response = sender.handle(&batch.event, claim_until).await;
    assert_eq!(response.batch_item_failures.len(), 1, "retried, not dropped");
    // A redelivery while the claim holds makes no Graph call.
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(stack.sim.accepted_count(), 1);
    // After the claim expires the retry sends again: the documented, counted possible duplicate.
    while now_ms() <= claim_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.sim.accepted_count(), 2);
    assert_eq!(stack.outcomes().await.len(), 1, "still exactly one outcome");
}

#[tokio::test]
async fn an_at_most_once_request_ends_unknown_instead_of_sending_twice() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let schema = wa_tests::schema("send-result.v1.json");
    // 1. Meta accepts the message but the answer never arrives in time: `unknown`, no retry.
    stack.sim.inject(Fault {
        kind: FaultKind::Delay { millis: 3000, accepted: true },
        count: 1,
        to: Some("16505555101".into()),
        endpoint: None,
    });
    let mut request = text_request("16505555101", "payment notice", "pay-1");
    request["delivery"] = json!("at_most_once");
    stack.enqueue(&request, "pay-1").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "ended, not retried");
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0]["status"], "unknown");
    assert_eq!(outcomes[0]["error"]["reason"], wa_core::policy::UNKNOWN_AMBIGUOUS);
    assert!(schema.is_valid(&outcomes[0]), "{}", outcomes[0]);
    // A redelivery makes no Graph call and publishes nothing more.
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.sim.accepted_count(), 1);
    assert!(stack.outcomes().await.is_empty());

    // 2. An attempt that claimed the request and stopped (its claim expired, no outcome): the
    //    next attempt does not call Meta. The same for the default delivery calls Meta once.
    let table = stack.table();
    let now = now_ms();
    for (key, to, delivery) in [("pay-2", "16505555102", "at_most_once"), ("pay-3", "16505555103", "at_least_once")] {
        let claim = wa_core::ports::IdempotencyStore::claim(&table, key, now - 10_000, now - 5_000).await.unwrap();
        assert_eq!(claim, wa_core::ports::Claim::Acquired);
        let mut request = text_request(to, "payment notice", key);
        request["delivery"] = json!(delivery);
        stack.enqueue(&request, key).await;
    }
    stack.drain(&sender, 1, Duration::from_secs(20)).await;
    let outcomes = stack.outcomes().await;
    let status = |key: &str| {
        outcomes.iter().find(|o| o["idempotency_key"] == key).map(|o| o["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("pay-2").as_deref(), Some("unknown"), "{outcomes:?}");
    assert_eq!(status("pay-3").as_deref(), Some("accepted"), "{outcomes:?}");
    let sent_to: Vec<String> =
        stack.sim.accepted().iter().map(|m| m.body["to"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(!sent_to.iter().any(|to| to.ends_with("5102")), "{sent_to:?}");
    assert_eq!(sent_to.iter().filter(|to| to.ends_with("5103")).count(), 1, "{sent_to:?}");
}

#[tokio::test]
async fn no_send_starts_too_close_to_the_deadline() {
    // Two sends a second: the batch's slots are about 0.5 s apart.
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(SenderConfig { default_rate: 2, ..mechanics() });
    for i in 0..3 {
        let key = format!("late-{i}");
        stack.enqueue(&text_request(&format!("1650555520{i}"), "hi", &key), &key).await;
    }
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    assert_eq!(batch.event.records.len(), 3);
    // 0.9 s to the deadline, 0.5 s reserved: the first slot is early enough, the later ones are not
    // (a Graph call then could be cut by the timeout). They are retried, their claims released.
    let response = sender.handle(&batch.event, now_ms() + 900).await;
    assert_eq!(response.batch_item_failures.len(), 2, "{:?}", response.batch_item_failures);
    assert_eq!(stack.sim.accepted_count(), 1);
    assert_eq!(stack.outcomes().await.len(), 1);
    // The next invocation sends the two others at once (nothing held their claims), each once,
    // even with a reserve longer than the whole invocation (a Graph timeout set above the
    // function's), which falls back to half of it.
    let greedy = stack.sender(SenderConfig { deadline_reserve: Duration::from_secs(60), ..mechanics() });
    let response = greedy.handle(&batch.event, now_ms() + 20_000).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    assert_eq!(stack.sim.accepted_count(), 3);
    assert_eq!(stack.outcomes().await.len(), 2);
}

#[tokio::test]
async fn a_redirected_send_is_retried_not_followed_and_sent_once() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    // The Graph base answers a redirect to the real endpoint: following it would send the message
    // on this first try, at an address the configuration did not name.
    let location = format!("{}/v23.0/{PHONE}/messages", stack.sim.base_url());
    stack.sim.inject(Fault { kind: FaultKind::Redirect { status: 307, location }, count: 1, to: None, endpoint: None });
    stack.enqueue(&text_request("16505555011", "moved", "moved"), "moved").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert_eq!(response.batch_item_failures.len(), 1, "retried, not dropped");
    assert!(stack.sim.accepted().is_empty(), "the redirect was not followed");
    assert!(stack.outcomes().await.is_empty(), "no outcome yet");
    // Nothing was sent, so the claim was released: the redelivery sends at once, exactly once.
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.sim.accepted_count(), 1);
    assert_eq!(stack.outcomes().await.len(), 1);
}

#[tokio::test]
async fn fifo_order_holds_after_a_failure() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let to = "16505556001";
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 131_000, http_status: 400 },
        count: 1,
        to: Some(to.into()),
        endpoint: None,
    });
    // The first send to this recipient fails (a1): a2 and a3 must not overtake it.
    for i in 1..=3 {
        stack.enqueue(&text_request(to, &format!("a{i}"), &format!("a{i}")), &format!("a{i}")).await;
    }
    stack.enqueue(&text_request("16505556002", "b1", "b1"), "b1").await;
    let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
    let response = sender.handle(&batch.event, now_ms() + 30_000).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let ids: Vec<&str> = batch.event.records.iter().filter_map(|r| r.message_id.as_deref()).collect();
    let group_a: Vec<&str> = batch
        .event
        .records
        .iter()
        .filter(|r| r.body.as_deref().unwrap_or_default().contains(to))
        .filter_map(|r| r.message_id.as_deref())
        .collect();
    assert_eq!(failed, group_a, "the failed record and the later ones of its group: {ids:?}");
    // SQS FIFO redelivers the failed records of the group in their order. (moto's own redelivery
    // of several in-flight messages of one group is out of order, so the event is built here as
    // Lambda delivers it.)
    let mut redelivery = batch.event.clone();
    redelivery.records.retain(|r| failed.contains(&r.message_id.as_deref().unwrap_or_default()));
    let response = sender.handle(&redelivery, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{:?} {:?}", response.batch_item_failures, stack.sim.seen());
    let texts: Vec<String> = stack
        .sim
        .accepted()
        .iter()
        .filter(|a| a.body["to"] == to)
        .map(|a| a.body["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["a1", "a2", "a3"]);
}

/// Panics on the n-th send (a bug or a poisoned record), after which it behaves.
struct PanicOnNth {
    inner: wa_infra::graph::GraphClient,
    calls: std::sync::atomic::AtomicUsize,
    nth: usize,
}

impl wa_core::ports::GraphApi for PanicOnNth {
    async fn send_message(
        &self,
        phone_number_id: &str,
        token: &str,
        body: &Value,
    ) -> Result<wa_core::ports::GraphAccepted, wa_core::ports::GraphFailure> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        assert!(call != self.nth, "injected panic on send {call}");
        self.inner.send_message(phone_number_id, token, body).await
    }

    async fn upload_media(
        &self,
        phone_number_id: &str,
        token: &str,
        mime_type: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<String, wa_core::ports::GraphFailure> {
        self.inner.upload_media(phone_number_id, token, mime_type, filename, bytes).await
    }
}

/// A slow state table (throttled, or far away): every rate-slot reservation answers `delay` late.
/// moto cannot be made slow, so this wraps the real adapter; it also counts the reservations.
struct SlowThrottle {
    inner: StateTable,
    delay: Duration,
    calls: std::sync::atomic::AtomicUsize,
}

impl wa_core::ports::ThrottleStore for SlowThrottle {
    async fn reserve(
        &self,
        phone_number_id: &str,
        count: u32,
        interval_us: u64,
        now_us: u64,
        horizon_us: u64,
    ) -> Result<Option<wa_core::ratelimit::Reservation>, wa_core::ports::StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let reservation = self.inner.reserve(phone_number_id, count, interval_us, now_us, horizon_us).await;
        tokio::time::sleep(self.delay).await;
        reservation
    }

    async fn pair_hit(&self, phone_number_id: &str, to: &str, now_ms: u64) -> Result<u32, wa_core::ports::StoreError> {
        self.inner.pair_hit(phone_number_id, to, now_ms).await
    }
}

impl wa_core::ports::HoldStore for SlowThrottle {
    async fn hold(&self, number: &str) -> Result<Option<wa_core::hold::Hold>, wa_core::ports::StoreError> {
        self.inner.hold(number).await
    }

    async fn put_hold(
        &self,
        number: &str,
        hold: &wa_core::hold::Hold,
        previous: u32,
    ) -> Result<bool, wa_core::ports::StoreError> {
        self.inner.put_hold(number, hold, previous).await
    }

    async fn claim_probe(&self, number: &str, now_ms: u64, until_ms: u64) -> Result<bool, wa_core::ports::StoreError> {
        self.inner.claim_probe(number, now_ms, until_ms).await
    }

    async fn clear_hold(&self, number: &str) -> Result<(), wa_core::ports::StoreError> {
        self.inner.clear_hold(number).await
    }
}

impl wa_core::ports::LimitStore for SlowThrottle {
    async fn limit_facts(
        &self,
        numbers: &[&str],
        portfolios: &[&str],
    ) -> Result<wa_core::ports::LimitFacts, wa_core::ports::StoreError> {
        self.inner.limit_facts(numbers, portfolios).await
    }

    async fn count_user(
        &self,
        portfolio: &str,
        user: &str,
        count: &wa_core::limit::Count,
    ) -> Result<wa_core::limit::Counted, wa_core::ports::StoreError> {
        self.inner.count_user(portfolio, user, count).await
    }

    async fn reached_at(&self, portfolio: &str, user: &str) -> Result<Option<u64>, wa_core::ports::StoreError> {
        self.inner.reached_at(portfolio, user).await
    }

    async fn record_tier(
        &self,
        portfolio: &str,
        tier: wa_core::limit::Tier,
        at_s: u64,
    ) -> Result<(), wa_core::ports::StoreError> {
        self.inner.record_tier(portfolio, tier, at_s).await
    }

    async fn record_number(
        &self,
        display: &str,
        phone_number_id: Option<&str>,
        rate: Option<u32>,
    ) -> Result<(), wa_core::ports::StoreError> {
        self.inner.record_number(display, phone_number_id, rate).await
    }
}

#[tokio::test]
async fn a_slow_table_lengthens_the_slot_lead_instead_of_failing_every_send() {
    let stack = SendStack::new(SimConfig::default()).await;
    // Each reservation takes over 150 ms: more than the 30 ms lead plus the 20 ms a send may be late.
    let throttle = SlowThrottle { inner: stack.table(), delay: Duration::from_millis(150), calls: Default::default() };
    let sender = stack.sender_throttled(throttle, mechanics());
    let calls = || sender.throttle.calls.load(std::sync::atomic::Ordering::SeqCst);
    let batch = |round: usize| {
        let requests: Vec<(String, Value)> = (0..8)
            .map(|i| {
                (
                    format!("s{round}-{i}"),
                    text_request(&format!("165055582{round}{i}"), "hi", &format!("slow-{round}-{i}")),
                )
            })
            .collect();
        batch_event(&requests)
    };
    // The batch's block of slots is already past when its reservation returns; each record then
    // reserves again with a lead that covers the round trip, and is sent on time.
    let response = sender.handle(&batch(0), now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    assert_eq!(stack.sim.accepted_count(), 8);
    assert!(stack.sim.seen().iter().all(|s| s.status == 200), "paced under the limit: {:?}", stack.sim.seen());
    // The next invocation of this process starts with the longer lead: one reservation for the batch.
    let before = calls();
    let response = sender.handle(&batch(1), now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    assert_eq!(stack.sim.accepted_count(), 16);
    // (One, unless this machine is so busy that a wake-up comes over 20 ms late; a lead that had
    // forgotten the slow round trips would take 1 + 8.)
    assert!(calls() - before <= 3, "the batch's block of slots was on time: {} reservations", calls() - before);
    assert!(stack.sim.seen().iter().all(|s| s.status == 200), "paced under the limit: {:?}", stack.sim.seen());
}

fn batch_event(requests: &[(String, Value)]) -> aws_lambda_events::sqs::SqsEvent {
    let records: Vec<Value> = requests
        .iter()
        .map(|(id, request)| {
            json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": request.to_string(),
                   "attributes": {"MessageGroupId": format!("{PHONE}#{}", request["to"].as_str().unwrap())}})
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).unwrap()
}

#[tokio::test]
async fn a_panic_in_one_record_fails_only_that_record() {
    let stack = SendStack::new(SimConfig::default()).await;
    let graph = PanicOnNth { inner: stack.graph(), calls: Default::default(), nth: 3 };
    let sender = stack.sender_with(graph, mechanics());
    let requests: Vec<(String, Value)> = (0..6)
        .map(|i| (format!("m{i}"), text_request(&format!("1650555800{i}"), "hi", &format!("panic-{i}"))))
        .collect();
    let event = batch_event(&requests);
    let claim_until = now_ms() + 1500;
    let response = sender.handle(&event, claim_until).await;
    assert_eq!(response.batch_item_failures.len(), 1, "only the panicking record: {:?}", response.batch_item_failures);
    assert!(response.batch_item_failures[0].item_identifier.starts_with('m'));
    assert_eq!(stack.sim.accepted_count(), 5);
    assert_eq!(stack.outcomes().await.len(), 5);
    // Its claim holds until the invocation's deadline (it may have been sent); then it goes out.
    while now_ms() <= claim_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = sender.handle(&event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.sim.accepted_count(), 6, "the five done before were not sent again");
    assert_eq!(stack.outcomes().await.len(), 1);
}

#[tokio::test]
async fn an_invocation_killed_mid_batch_sends_nothing_twice_that_had_completed() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(SenderConfig { default_rate: 20, ..mechanics() });
    let requests: Vec<(String, Value)> = (0..8)
        .map(|i| (format!("k{i}"), text_request(&format!("1650555810{i}"), "hi", &format!("kill-{i}"))))
        .collect();
    let event = batch_event(&requests);
    let claim_until = now_ms() + 1500;
    // Killed (timeout, OOM) while its slots are still being served: about half is sent.
    let halfway = async {
        while stack.sim.accepted_count() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::select! {
        _ = sender.handle(&event, claim_until) => panic!("the invocation was meant to be cut short"),
        () = halfway => {}
    }
    assert!(stack.sim.accepted_count() < 8, "killed mid-batch");
    let before = stack.outcomes().await;
    let completed: Vec<String> = before.iter().map(|o| o["to"].as_str().unwrap().to_owned()).collect();
    assert!(completed.len() < 8, "{completed:?}");
    // Lambda redelivers the whole batch after the visibility timeout (claims have expired by then).
    while now_ms() <= claim_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = sender.handle(&event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty());
    let mut sends: HashMap<String, usize> = HashMap::new();
    for accepted in stack.sim.accepted() {
        *sends.entry(accepted.body["to"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(sends.len(), 8, "every request sent");
    for to in &completed {
        assert_eq!(sends[to], 1, "{to} had completed before the kill and must not be sent again");
    }
    // Every request has its outcome. An outcome published in the instant between publishing and
    // recording "published" may be published again by the redelivery (consumers dedupe on
    // idempotency_key, as they must for any SQS standard queue); anything else is published once.
    let after = stack.outcomes().await;
    let mut keys: Vec<&str> = before.iter().chain(&after).map(|o| o["idempotency_key"].as_str().unwrap()).collect();
    let total = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 8, "one outcome per request");
    assert!(total - keys.len() <= 2, "{} outcomes published twice", total - keys.len());
}

#[tokio::test]
async fn the_24_hour_window_and_marketing_opt_outs_are_respected() {
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(SenderConfig::default());
    let table = stack.table();
    let now = i64::try_from(now_ms() / 1000).unwrap();
    let (open, closed, fallback, opted_out, meta_closed) =
        ("16505559001", "16505559002", "16505559003", "16505559004", "16505559005");
    table.record_inbound(PHONE, open, now - 3600, None).await.unwrap();
    table.record_inbound(PHONE, closed, now - 25 * 3600, None).await.unwrap();
    table.record_inbound(PHONE, fallback, now - 25 * 3600, None).await.unwrap();
    table.set_marketing_opt_out(PHONE, opted_out, true, now - 60).await.unwrap();
    table.record_inbound(PHONE, meta_closed, now - 3600, None).await.unwrap();
    stack.sim.inject(Fault {
        kind: FaultKind::Error { code: 131_047, http_status: 400 },
        count: 1,
        to: Some(meta_closed.into()),
        endpoint: None,
    });
    // A template webhook told us `spring_sale` is marketing: no category needs declaring.
    wa_core::ports::ConversationStore::record_template_category(&table, "spring_sale", "en_US", "marketing")
        .await
        .unwrap();

    let template = json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}});
    let mut with_fallback = text_request(fallback, "free-form", "w3");
    with_fallback["fallback"] = template.clone();
    let mut marketing = json!({"phone_number_id": PHONE, "to": opted_out, "message": template, "idempotency_key": "w4", "category": "marketing"});
    let mut utility = marketing.clone();
    utility["idempotency_key"] = json!("w5");
    utility["category"] = json!("utility");
    marketing["callback_data"] = json!("promo");
    let requests = [
        text_request(&format!("+{open}"), "inside the window", "w1"),
        text_request(closed, "outside the window", "w2"),
        with_fallback,
        marketing,
        utility,
        text_request(meta_closed, "meta says closed", "w6"),
        json!({"phone_number_id": PHONE, "to": opted_out, "idempotency_key": "w8",
               "message": {"type": "template", "template": {"name": "spring_sale", "language": {"code": "en_US"}}}}),
    ];
    for request in &requests {
        stack.enqueue(request, request["idempotency_key"].as_str().unwrap()).await;
    }
    stack.drain(&sender, 1, Duration::from_secs(30)).await;
    // Meta's 131047 was recorded: the next free-form message to that user is not even attempted.
    stack.enqueue(&text_request(meta_closed, "again", "w7"), "w7").await;
    stack.drain(&sender, 1, Duration::from_secs(30)).await;

    let outcomes = stack.outcomes().await;
    let by_key: HashMap<&str, &Value> = outcomes.iter().map(|o| (o["idempotency_key"].as_str().unwrap(), o)).collect();
    assert_eq!(by_key.len(), 8);
    assert_eq!(by_key["w8"]["status"], "opted_out", "category learned from template webhooks");
    assert_eq!(by_key["w1"]["status"], "accepted");
    assert_eq!(by_key["w2"]["status"], "window_closed");
    assert_eq!(by_key["w3"]["status"], "accepted");
    assert_eq!(by_key["w3"]["used_fallback"], true);
    assert_eq!(by_key["w4"]["status"], "opted_out");
    assert_eq!(by_key["w4"]["callback_data"], "promo");
    assert_eq!(by_key["w5"]["status"], "accepted", "a utility template still goes to an opted-out user");
    assert_eq!(by_key["w6"]["status"], "failed");
    assert_eq!(by_key["w6"]["error"]["code"], 131_047);
    assert_eq!(by_key["w7"]["status"], "window_closed");
    let schema = wa_tests::schema("send-result.v1.json");
    assert!(outcomes.iter().all(|o| schema.validate(o).is_ok()));

    // Each recipient is a message group of its own: FIFO orders within a group, not across them.
    let mut sent: Vec<(String, String)> = stack
        .sim
        .accepted()
        .iter()
        .map(|a| (a.body["to"].as_str().unwrap().to_owned(), a.body["type"].as_str().unwrap_or("text").to_owned()))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (format!("+{open}"), "text".to_owned()),
            (fallback.to_owned(), "template".to_owned()),
            (opted_out.to_owned(), "template".to_owned())
        ],
        "refused requests never reach Meta"
    );
}
