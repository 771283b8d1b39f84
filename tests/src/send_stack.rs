#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A sender stack on moto (FIFO outbound queue, events queue, state table, secret) with the Cloud
//! API simulator as the Graph API, and the ESM emulator to drain it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{create_fifo_queue, create_queue, create_secret, create_state_table, drain_queue, esm, moto_config};
use aws_config::SdkConfig;
use sender::{Sender, SenderConfig};
use serde_json::{Value, json};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::{EventBus, Events};
use wa_infra::graph::GraphClient;
use wa_infra::s3::S3Objects;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_simulator::{SimConfig, Simulator};

pub const PHONE: &str = "106540352242922";

pub type TestSender =
    Sender<GraphClient, StateTable, StateTable, Events, CachedSecrets<SecretsManagerFetch>, S3Objects>;

/// The sender's configuration for tests about sending mechanics (idempotency, errors, pacing),
/// whose recipients never wrote to us: the conversation rules (tested on their own) are off.
#[must_use]
pub fn mechanics() -> SenderConfig {
    // Claims in these tests last 1.5 s to a few seconds: sends start until 0.5 s before the deadline.
    SenderConfig {
        enforce_conversation_rules: false,
        deadline_reserve: Duration::from_millis(500),
        ..SenderConfig::default()
    }
}

impl SendStack {
    /// The stack's state table.
    #[must_use]
    pub fn table(&self) -> StateTable {
        StateTable::new(aws_sdk_dynamodb::Client::new(&self.aws), self.table.clone())
    }
}

pub struct SendStack {
    pub aws: SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    /// The functions' SQS clients (SendMessageBatch and the SDK's).
    pub queues: Sqs,
    pub outbound: String,
    pub events: String,
    pub table: String,
    pub secret_id: String,
    pub sim: Simulator,
    /// The bus senders publish to (`None`: the events queue directly).
    pub bus: Option<String>,
}

pub fn secret(access_token: &str) -> String {
    json!({"app_id": "1", "app_secret": "s", "verify_token": "v", "access_token": access_token}).to_string()
}

pub fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

impl SendStack {
    pub async fn new(sim: SimConfig) -> Self {
        let aws = moto_config().await;
        let token = sim.access_token.clone();
        Self {
            sqs: aws_sdk_sqs::Client::new(&aws),
            queues: Sqs::new(&aws).expect("SQS clients"),
            outbound: create_fifo_queue(&aws, 2).await,
            events: create_queue(&aws, 262_144).await,
            table: create_state_table(&aws).await,
            secret_id: create_secret(&aws, &secret(&token), None, None).await,
            sim: Simulator::start("127.0.0.1:0", sim).await.expect("simulator"),
            aws,
            bus: None,
        }
    }

    pub fn sender(&self, config: SenderConfig) -> TestSender {
        self.sender_with(self.graph(), config)
    }

    /// The Graph client pointed at the simulator.
    pub fn graph(&self) -> GraphClient {
        GraphClient::new(&self.sim.base_url(), "v23.0", Duration::from_millis(1500)).unwrap()
    }

    /// A sender with another Graph implementation (a fault wrapper).
    pub fn sender_with<G: wa_core::ports::GraphApi>(
        &self,
        graph: G,
        config: SenderConfig,
    ) -> Sender<G, StateTable, StateTable, Events, CachedSecrets<SecretsManagerFetch>, S3Objects> {
        self.sender_parts(graph, self.secrets(), self.table(), config)
    }

    /// A sender with another rate-slot store (a fault wrapper around the state table).
    pub fn sender_throttled<T: wa_core::ports::ThrottleStore>(
        &self,
        throttle: T,
        config: SenderConfig,
    ) -> Sender<GraphClient, StateTable, T, Events, CachedSecrets<SecretsManagerFetch>, S3Objects> {
        self.sender_parts(self.graph(), self.secrets(), throttle, config)
    }

    /// A sender whose tokens come from `secrets` (several apps).
    pub fn sender_routed<G: wa_core::ports::GraphApi, R: wa_core::apps::AppRouting>(
        &self,
        graph: G,
        secrets: R,
        config: SenderConfig,
    ) -> Sender<G, StateTable, StateTable, Events, R, S3Objects> {
        self.sender_parts(graph, secrets, self.table(), config)
    }

    /// The stack's secret, cached as the function caches it.
    fn secrets(&self) -> CachedSecrets<SecretsManagerFetch> {
        let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(&self.aws), self.secret_id.clone());
        CachedSecrets::new(fetch, CachePolicy::default())
    }

    /// A sender on the stack's table and queues with these parts.
    fn sender_parts<G: wa_core::ports::GraphApi, R: wa_core::apps::AppRouting, T: wa_core::ports::ThrottleStore>(
        &self,
        graph: G,
        secrets: R,
        throttle: T,
        config: SenderConfig,
    ) -> Sender<G, StateTable, T, Events, R, S3Objects> {
        let table = self.table();
        Sender {
            graph,
            idempotency: table.clone(),
            throttle,
            conversations: table,
            events: match &self.bus {
                Some(bus) => Events::Bus(EventBus::new(&self.aws, bus.clone())),
                None => Events::Queue(SqsQueue::new(&self.queues, self.events.clone(), 262_144)),
            },
            redelivery: Events::Queue(SqsQueue::new(&self.queues, self.outbound.clone(), 262_144)),
            secrets,
            config,
            lead: sender::SlotLead::default(),
            objects: S3Objects::new(wa_infra::aws::s3_client(&self.aws)),
        }
    }

    /// Puts a request on the outbound queue, grouped by business number and recipient.
    pub async fn enqueue(&self, request: &Value, dedup: &str) {
        let group = format!(
            "{}#{}",
            request["phone_number_id"].as_str().unwrap_or(""),
            request["to"].as_str().unwrap_or("read")
        );
        self.sqs
            .send_message()
            .queue_url(&self.outbound)
            .message_body(request.to_string())
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .unwrap();
    }

    /// Runs `pollers` concurrent pollers until the outbound queue is empty (or `limit` passes).
    pub async fn drain(&self, sender: &TestSender, pollers: usize, limit: Duration) {
        let started = Instant::now();
        let poll = || async {
            let debug = std::env::var("WA_DEBUG_PACING").is_ok();
            while started.elapsed() < limit {
                let t0 = started.elapsed();
                let received = esm::receive(&self.sqs, &self.outbound).await;
                if debug {
                    eprintln!(
                        "RECV {:?} took {:?} got {}",
                        t0,
                        started.elapsed() - t0,
                        received.as_ref().map_or(0, |b| b.event.records.len())
                    );
                }
                match received {
                    Some(batch) => {
                        let response = sender.handle(&batch.event, now_ms() + 30_000).await;
                        let t1 = started.elapsed();
                        esm::settle(&self.sqs, &self.outbound, &batch, &response).await;
                        if debug {
                            eprintln!("DONE at {:?} settle took {:?}", t1, started.elapsed() - t1);
                        }
                    }
                    None => {
                        if esm::remaining(&self.sqs, &self.outbound).await == 0 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        futures_util::future::join_all((0..pollers).map(|_| poll())).await;
        assert_eq!(esm::remaining(&self.sqs, &self.outbound).await, 0, "outbound queue not drained within {limit:?}");
    }

    pub async fn outcomes(&self) -> Vec<Value> {
        drain_queue(&self.aws, &self.events).await.iter().map(|b| serde_json::from_str(b).unwrap()).collect()
    }
}

pub fn text_request(to: &str, text: &str, key: &str) -> Value {
    json!({"phone_number_id": PHONE, "to": to, "message": {"type": "text", "text": {"body": text}},
           "idempotency_key": key, "callback_data": format!("cb-{key}")})
}

/// SQS events as Lambda would deliver them from the outbound FIFO queue: `count` requests, each to
/// its own recipient (own message group), in batches of 10.
pub fn outbound_events(count: usize, phone: &str, prefix: &str) -> Vec<aws_lambda_events::sqs::SqsEvent> {
    let records: Vec<Value> = (0..count)
        .map(|i| {
            let to = format!("1650557{i:04}");
            let mut request = text_request(&to, "paced", &format!("{prefix}{i}"));
            request["phone_number_id"] = json!(phone);
            json!({
                "messageId": format!("{prefix}-msg-{i}"),
                "receiptHandle": format!("{prefix}-rh-{i}"),
                "body": request.to_string(),
                "attributes": {"MessageGroupId": format!("{phone}#{to}"), "MessageDeduplicationId": format!("{prefix}{i}")},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:outbound.fifo",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    records.chunks(10).map(|chunk| serde_json::from_value(json!({"Records": chunk})).unwrap()).collect()
}
