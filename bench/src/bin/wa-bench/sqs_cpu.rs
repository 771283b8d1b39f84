//! Client CPU per event enqueued: `SqsQueue::publish` (the functions' publisher: our
//! `SendMessageBatch` client, `wa_infra::sqs_batch`) against a loopback endpoint that answers like
//! SQS (on its own thread, so that only the client's CPU is counted: the thread CPU time of the
//! current-thread runtime that does all the client's work), and for comparison the same 10-event
//! batch through the AWS SDK's `send_message_batch` (`sdk_batched_10`).
//! Prints one JSON line: per case the median of 5 runs, and each run's CPU.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_core::ports::EventQueue;
use wa_infra::sqs::{Sqs, SqsQueue};

/// User + system CPU of this thread (`/proc/thread-self/stat`, clock ticks of 10 ms: the runs
/// below last seconds, so the resolution is ample). No `unsafe` needed.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

pub fn main() {
    let endpoint = wa_bench::fake_aws::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let config = wa_bench::fake_aws::sdk_config(&endpoint).await;
        let sqs = Sqs::new(&config).unwrap();
        let queue_url = format!("{endpoint}/000000000000/inbound");
        let queue = SqsQueue::new(&sqs, queue_url.clone(), 262_144);
        let body = wa_bench::inbound_event().to_string();
        let batch: Vec<String> = (0..10).map(|_| body.clone()).collect();
        let single = vec![body.clone()];
        let hundred: Vec<String> = (0..100).map(|_| body.clone()).collect();
        let sdk_entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect();
        let sdk_publish = || async {
            let out = sqs
                .sdk
                .send_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(sdk_entries.clone()))
                .send()
                .await
                .unwrap();
            assert!(out.failed().is_empty());
        };
        // Warm up: connections, signing keys, allocator.
        for _ in 0..200 {
            queue.publish(&batch).await.unwrap();
            sdk_publish().await;
        }
        // Each case is run REPEATS times, interleaved, and the median reported: the VM's scheduling
        // moves single runs by ±30 %.
        const REPEATS: usize = 5;
        let cases = [
            ("batched_10", &batch, 2000usize),
            ("batched_100", &hundred, 200),
            ("one_per_call", &single, 2000),
            ("sdk_batched_10", &batch, 2000),
        ];
        let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cases.len()];
        for _ in 0..REPEATS {
            for (case, (name, bodies, calls)) in cases.iter().enumerate() {
                let cpu = thread_cpu();
                let wall = Instant::now();
                for _ in 0..*calls {
                    if *name == "sdk_batched_10" {
                        sdk_publish().await;
                    } else {
                        queue.publish(bodies).await.unwrap();
                    }
                }
                let cpu = thread_cpu() - cpu;
                let events = (calls * bodies.len()) as f64;
                samples[case].push((cpu.as_secs_f64() * 1e6 / events, wall.elapsed().as_secs_f64() * 1e6 / events));
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut results = serde_json::Map::new();
        for ((name, bodies, calls), runs) in cases.iter().zip(samples) {
            results.insert(
                (*name).into(),
                json!({
                    "events": calls * bodies.len(),
                    "runs": REPEATS,
                    "cpu_us_per_event": median(runs.iter().map(|r| r.0).collect()),
                    "cpu_us_per_event_runs": runs.iter().map(|r| r.0).collect::<Vec<_>>(),
                    "wall_us_per_event": median(runs.iter().map(|r| r.1).collect()),
                }),
            );
        }
        println!("{}", Value::Object(results));
    });
}
