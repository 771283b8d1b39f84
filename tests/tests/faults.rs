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
