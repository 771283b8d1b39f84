//! Client CPU per event enqueued, AWS SDK included: `SqsQueue::publish` against a loopback
//! endpoint that answers `SendMessageBatch` like SQS (on its own thread, so that only the client's
//! CPU is counted: the thread CPU time of the current-thread runtime that does all the client's work).
//! Prints one JSON line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_config::Region;
use aws_credential_types::Credentials;
use serde_json::{Value, json};
use wa_core::ports::EventQueue;
use wa_infra::sqs::SqsQueue;

/// User + system CPU of this thread (`/proc/thread-self/stat`, clock ticks of 10 ms: the runs
/// below last seconds, so the resolution is ample). No `unsafe` needed.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let endpoint = wa_bench::fake_aws::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let config = wa_infra::aws::loader()
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .load()
            .await;
        let queue = SqsQueue::new(
            aws_sdk_sqs::Client::new(&config),
            format!("{endpoint}/000000000000/inbound"),
            262_144,
        );
        let body = json!({"version": 1, "kind": "message", "event_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA",
            "phone_number_id": "106540352242922", "user_id": "16505551234", "waba_id": "102290129340398", "field": "messages",
            "received_at": 1_795_000_000_000u64, "payload": {"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA",
            "timestamp": "1749416383", "type": "text", "text": {"body": "Hello, is my order ready? Thanks a lot, see you soon."}}})
        .to_string();
        let batch: Vec<String> = (0..10).map(|_| body.clone()).collect();
        let single = vec![body.clone()];
        let hundred: Vec<String> = (0..100).map(|_| body.clone()).collect();
        // Warm up: connections, signing keys, allocator.
        for _ in 0..200 {
            queue.publish(&batch).await.unwrap();
        }
        let mut results = serde_json::Map::new();
        for (name, bodies, calls) in [("batched_10", &batch, 2000usize), ("batched_100", &hundred, 200), ("one_per_call", &single, 5000)] {
            let cpu = thread_cpu();
            let wall = Instant::now();
            for _ in 0..calls {
                queue.publish(bodies).await.unwrap();
            }
            let cpu = thread_cpu() - cpu;
            let events = (calls * bodies.len()) as f64;
            results.insert(
                name.into(),
                json!({
                    "events": events,
                    "cpu_us_per_event": cpu.as_secs_f64() * 1e6 / events,
                    "wall_us_per_event": wall.elapsed().as_secs_f64() * 1e6 / events,
                }),
            );
        }
        println!("{}", Value::Object(results));
    });
}
