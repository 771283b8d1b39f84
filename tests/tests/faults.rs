//! The fault-injection runs at a small size (the full runs: `scripts/faults.sh`). They need the
//! function binaries (`cargo build -p webhook-ingest -p event-processor -p sender -p
//! secret-rotation`; `scripts/test.sh` builds them first) and moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wa_tests::faults::{ingest, rotation, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_and_processor_lose_nothing_under_faults_and_kills() {
    let report = ingest::run(&ingest::Plan::new(300, 7)).await;
    println!("{}", report.markdown());
    assert!(report.passed(), "{}", report.markdown());
    assert!(report.injected.values().sum::<u64>() > 0, "faults were injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sender_sends_once_and_loses_nothing_under_faults_and_kills() {
    let mut plan = send::Plan::new(300, 7);
    // A kill in the small run too (1 % of about 40 invocations would often be none).
    plan.kills = 0.05;
    let report = send::run(&plan).await;
    println!("{}", report.markdown());
    assert!(report.passed(), "{}", report.markdown());
    assert!(report.injected.get("Graph timeout after accepting (ambiguous)").copied().unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_with_a_failure_at_each_step_never_breaks_the_traffic() {
    let report = rotation::run(&rotation::Plan::new(7)).await;
    println!("{}", report.markdown());
    assert!(report.passed(), "{}", report.markdown());
    assert_eq!(report.delivered, 8, "every rotation completed");
}

/// The cost run at a small size (the full one: `scripts/bench.sh`, `wa-faults cost`): the AWS
/// calls per item, counted at the proxies, stay what the cost table in BENCHMARKS.md prices.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_message_status_and_send_costs_what_the_cost_table_says() {
    use wa_tests::faults::cost;
    let (messages, statuses, sent) = cost::run(40, 11).await;
    for report in [&messages, &statuses, &sent] {
        assert!(report.lost == 0 && report.duplicated == 0 && report.delivered > 0, "{}", report.markdown());
    }
    let per_item = |report: &wa_tests::faults::Report, role: &str, unit: &str| {
        let usage = report.usage.iter().find(|u| u.role == role).unwrap();
        usage.units.get(unit).copied().unwrap_or(0.0) / report.items as f64
    };
    let ingest = messages.usage.iter().find(|u| u.role == "webhook-ingest").unwrap();
    assert_eq!(
        ingest.calls.get("AmazonSQS.SendMessageBatch").copied(),
        Some(ingest.invocations),
        "one SQS call a webhook"
    );
    assert_eq!(per_item(&messages, "event-processor", "SQS batch entries"), 1.0, "one published entry a message");
    // A batch's events go out together: one request per processor batch, not one per event.
    for report in [&messages, &statuses] {
        let processor = report.usage.iter().find(|u| u.role == "event-processor").unwrap();
        let requests = processor.calls.get("AmazonSQS.SendMessageBatch").copied().unwrap_or(0);
        assert!(
            requests <= processor.invocations && requests < report.items,
            "{requests} requests for {} events in {} batches",
            report.items,
            processor.invocations
        );
    }
    assert_eq!(per_item(&sent, "sender", "SQS batch entries"), 1.0, "one outcome a send");
    // A user's message: claim, record, inbound window (a number's display once per process).
    let message_writes = per_item(&messages, "event-processor", "DynamoDB write units");
    assert!(message_writes <= 3.3, "write units per message: {message_writes}");
    // A status: claim, record, status and pricing in one write, its counter, the ledger's
    // transaction for a message's first billable status only.
    let status_writes = per_item(&statuses, "event-processor", "DynamoDB write units");
    assert!(status_writes <= 6.5, "write units per status: {status_writes}");
    let send_writes = per_item(&sent, "sender", "DynamoDB write units");
    assert!(send_writes <= 12.0, "write units per send: {send_writes}");
    let (markdown, json) = cost::report(&messages, &statuses, &sent);
    assert!(markdown.contains("users' messages in") && markdown.contains("lean (FunctionUrl, Queue)"), "{markdown}");
    assert!(json["lean_message_per_million"].as_f64() < json["message_per_million"].as_f64(), "{json}");
    for key in ["message_per_million", "status_per_million", "send_per_million", "lean_message_per_million"] {
        let dollars = json[key].as_f64().unwrap();
        assert!(dollars > 1.0 && dollars < 100.0, "{key}: {dollars}");
    }
}
