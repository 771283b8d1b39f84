//! Sender pacing: 2000 queued sends over 4 business numbers, the simulator limiting each number to
//! 80 messages/s with 50 ms latency; the real sender handler on the local stack's queue and state
//! (SQLite), five concurrent pollers like Lambda's event source mapping. Prints one JSON line:
//! achieved rate per number, the busiest 1-second window, 130429 count, p99 queue-to-accepted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sender::{Sender, SenderConfig};
use serde_json::{Value, json};
use wa_core::secrets::AppSecrets;
use wa_infra::graph::GraphClient;
use wa_infra_local::{LocalDb, LocalQueue, LocalSecrets, LocalState};
use wa_simulator::{SimConfig, Simulator};

const NUMBERS: [&str; 4] = ["100000000000001", "100000000000002", "100000000000003", "100000000000004"];
const SENDS: usize = 2000;
const LIMIT: u32 = 80;
const POLLERS: usize = 5;

fn sqs_event(batch: &[wa_infra_local::Received]) -> aws_lambda_events::sqs::SqsEvent {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            json!({"messageId": m.id.to_string(), "receiptHandle": m.receipt, "body": m.body,
                   "attributes": {"ApproximateReceiveCount": m.receives.to_string(), "MessageGroupId": m.group},
                   "messageAttributes": {}, "eventSource": "aws:sqs"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

pub fn main() {
    wa_infra::telemetry::silence_metrics();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let config = SimConfig {
            messages_per_second: LIMIT,
            latency: Duration::from_millis(50),
            access_token: "bench-token".into(),
            ..SimConfig::default()
        };
        let sim = Simulator::start("127.0.0.1:0", config).await.unwrap();
        let dir = std::env::temp_dir().join(format!("wa-pacing-{}", std::process::id()));
        let db = LocalDb::open(&dir.join("state.sqlite3")).unwrap();
        let outbound = LocalQueue::new(&db, "outbound.fifo", true, 262_144, 10);
        let events = LocalQueue::new(&db, "events", false, 262_144, 5);
        let state = LocalState::new(&db);
        let secrets = LocalSecrets(Arc::new(AppSecrets {
            app_id: "1".into(),
            app_secret: "s".into(),
            verify_token: "v".into(),
            access_token: "bench-token".into(),
            phone_number_tokens: BTreeMap::new(),
        }));
        let sender = Arc::new(Sender {
            graph: GraphClient::new(&sim.base_url(), "v23.0", Duration::from_secs(10)).unwrap(),
            idempotency: state.clone(),
            throttle: state.clone(),
            conversations: state.clone(),
            events: events.clone(),
            redelivery: outbound.clone(),
            secrets,
            objects: wa_infra_local::LocalBlobs::new(&db),
            config: SenderConfig {
                default_rate: LIMIT,
                enforce_conversation_rules: false,
                rates: HashMap::new(),
                ..SenderConfig::default()
            },
            lead: sender::SlotLead::default(),
        });
        // Each recipient its own group, as many distinct users are.
        let mut queued_at = HashMap::new();
        for i in 0..SENDS {
            let number = NUMBERS[i % NUMBERS.len()];
            let to = format!("1650{:07}", i);
            let key = format!("pace-{i}");
            let request = json!({"phone_number_id": number, "to": to, "idempotency_key": key,
                                 "message": {"type": "text", "text": {"body": "pacing"}}});
            outbound.send(&request.to_string(), Some(&format!("{number}#{to}")), Some(&key)).unwrap();
            queued_at.insert(key, wa_infra::telemetry::now_millis());
        }
        let started = Instant::now();
        let pollers = (0..POLLERS).map(|_| {
            let sender = sender.clone();
            let outbound = outbound.clone();
            tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(120) {
                    let batch = outbound.receive(10, Duration::from_secs(30)).unwrap();
                    if batch.is_empty() {
                        if outbound.info().unwrap().in_flight == 0 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let deadline = wa_infra::telemetry::now_millis() + 29_000;
                    let response = sender.handle(&sqs_event(&batch), deadline).await;
                    let failed: Vec<String> =
                        response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
                    for message in &batch {
                        if failed.contains(&message.id.to_string()) {
                            outbound.release(&message.receipt, 0).unwrap();
                        } else {
                            outbound.delete(&message.receipt).unwrap();
                        }
                    }
                }
            })
        });
        futures_util::future::join_all(pollers).await;
        let elapsed = started.elapsed().as_secs_f64();
        let outcomes: Vec<Value> = events
            .peek(0, 100_000)
            .unwrap()
            .into_iter()
            .map(|(_, body, _)| serde_json::from_str(&body).unwrap())
            .collect();
        let accepted_outcomes: Vec<&Value> = outcomes.iter().filter(|o| o["status"] == "accepted").collect();
        let mut latencies: Vec<u64> = accepted_outcomes
            .iter()
            .map(|o| o["at"].as_u64().unwrap().saturating_sub(queued_at[o["idempotency_key"].as_str().unwrap()]))
            .collect();
        latencies.sort_unstable();
        let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or(0);
        let accepted = sim.accepted();
        let seen = sim.seen();
        let mut per_number = serde_json::Map::new();
        for number in NUMBERS {
            let times: Vec<u64> = accepted.iter().filter(|a| a.phone_number_id == number).map(|a| a.at_ms).collect();
            let span = (times.iter().max().unwrap() - times.iter().min().unwrap()) as f64 / 1000.0;
            let busiest =
                times.iter().map(|t| times.iter().filter(|u| **u >= *t && **u < t + 1000).count()).max().unwrap();
            per_number.insert(
                number.into(),
                json!({"accepted": times.len(), "rate_per_s": (times.len() - 1) as f64 / span, "busiest_1s": busiest}),
            );
        }
        let throttled = seen.iter().filter(|s| s.code == Some(130_429)).count();
        println!(
            "{}",
            json!({"sends": SENDS, "numbers": NUMBERS.len(), "limit_per_number": LIMIT, "latency_ms": 50,
                   "outcomes": outcomes.len(), "accepted": accepted_outcomes.len(), "elapsed_s": elapsed,
                   "graph_calls": seen.len(), "throttled_130429": throttled,
                   "throttled_pct": 100.0 * throttled as f64 / seen.len().max(1) as f64,
                   "p99_queue_to_accepted_ms": p99, "per_number": per_number})
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
