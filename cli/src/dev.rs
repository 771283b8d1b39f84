//! `wa dev`: the whole pipeline in one process on loopback, with no AWS account.
//!
//! The same handler code as the Lambdas: webhook-verify and webhook-ingest behind a local HTTP
//! server (`GET|POST /webhook`), the event processor on the inbound queue, the sender on the
//! outbound FIFO queue. Queues, blobs and state live in one SQLite file (`<data dir>/state.sqlite3`),
//! so a restart loses nothing. The Graph API is the Cloud API simulator, which also posts the
//! signed status webhooks back, unless a real token is configured. Progress is printed from the
//! events queue (what business consumers see), with phone numbers masked and no message text.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use event_processor::Processor;
use fallback::Fallback;
use media_fetcher::{FetchConfig, MediaFetcher};
use sender::{Sender, SenderConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use wa_core::apps::AppRouting;
use wa_core::conversation::OptOutKeywords;
use wa_core::ports::{BlobStore, EventQueue};
use wa_core::secrets::AppSecrets;
use wa_infra::graph::GraphClient;
use wa_infra::media::GraphMedia;
use wa_infra_local::{LocalBlobs, LocalDb, LocalQueue, LocalSecrets, LocalState, Received};
use wa_simulator::{SimConfig, Simulator};
use webhook_ingest::Ingest;

use crate::outbox::Outbox;
use crate::serve::HttpServer;

/// The development app's id.
pub const DEV_APP_ID: &str = "100000000000001";
/// The development app secret (signs the simulator's webhooks).
pub const DEV_APP_SECRET: &str = "dev-app-secret";
/// The development verify token.
pub const DEV_VERIFY_TOKEN: &str = "dev-verify-token";
/// The token the simulator accepts.
pub const DEV_ACCESS_TOKEN: &str = "dev-access-token";
/// The development business number.
pub const DEV_PHONE_NUMBER_ID: &str = "106540352242922";
/// The local database file inside the data directory.
pub const DB_FILE: &str = "state.sqlite3";
/// Messages per second per business number unless told otherwise (Meta's default throughput).
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 80;

/// Queue names in the local database.
pub const INBOUND: &str = "inbound";
/// The outbound FIFO queue.
pub const OUTBOUND: &str = "outbound.fifo";
/// The events queue.
pub const EVENTS: &str = "events";
/// The media fetcher's queue.
pub const MEDIA: &str = "media";
/// The fallback function's queue (the bus's fallback rule, routed locally).
pub const FALLBACK: &str = "fallback";

const MAX_BYTES: usize = 1_048_576;
/// Concurrent sender invocations, as `SenderMaxConcurrency` defaults to in the template.
pub const DEFAULT_SENDER_POLLERS: usize = 5;
const VISIBILITY: Duration = Duration::from_secs(10);

/// The real Graph API instead of the simulator.
#[derive(Clone)]
pub struct RealGraph {
    /// The Graph host.
    pub base: String,
    /// The system-user token.
    pub access_token: String,
    /// The app secret (verifies Meta's webhooks when they reach this stack through a tunnel).
    pub app_secret: String,
    /// The verify token to set in Meta's dashboard.
    pub verify_token: String,
}

/// How to run.
#[derive(Clone)]
pub struct DevOptions {
    /// The webhook server's address.
    pub listen: String,
    /// The simulator's address.
    pub simulator_listen: String,
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// The real Graph API, when configured.
    pub real_graph: Option<RealGraph>,
    /// Messages per second per business number.
    pub messages_per_second: u32,
    /// Serve the webhook and queue its events only: no event processor, no sender (to measure the
    /// webhook path alone, or to buffer events for later).
    pub webhook_only: bool,
    /// The ingest handler's acceptance window in seconds (`None`: events of any age).
    pub max_event_age_s: Option<u64>,
    /// Keep fallback SMS and e-mails without printing them (the tests).
    pub quiet_outbox: bool,
    /// The messaging-limit tier until the simulator (or Meta) announces one: the sender defers
    /// templates to new users beyond it, and the simulator enforces it (`--messaging-limit`).
    pub messaging_limit: Option<wa_core::limit::Tier>,
    /// Concurrent sender invocations (the template's `SenderMaxConcurrency`; `--sender-concurrency`).
    pub sender_pollers: usize,
    /// Flush every commit to the disk (default); `false` (`--no-flush`): survive a crash of the
    /// process but not a power cut, and send several times faster ([`LocalDb::flush_every_commit`]).
    pub flush: bool,
}

impl DevOptions {
    /// The local stack on loopback ports of the system's choosing, with the simulator, in
    /// `data_dir`, quiet (tests and benchmarks): the defaults of `wa dev`.
    #[must_use]
    pub fn loopback(data_dir: PathBuf) -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            simulator_listen: "127.0.0.1:0".into(),
            data_dir,
            real_graph: None,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            webhook_only: false,
            max_event_age_s: None,
            quiet_outbox: true,
            messaging_limit: None,
            sender_pollers: DEFAULT_SENDER_POLLERS,
            flush: true,
        }
    }
}

/// The queues of a local database.
pub struct Queues {
    /// Inbound events.
    pub inbound: LocalQueue,
    /// Send requests (FIFO).
    pub outbound: LocalQueue,
    /// Enriched events and outcomes.
    pub events: LocalQueue,
    /// Media messages waiting for their file to be stored.
    pub media: LocalQueue,
    /// Undelivered requests for the fallback function (what the bus's fallback rule selects).
    pub fallback: LocalQueue,
}

impl Queues {
    /// The queues of `db`, as the template configures their SQS counterparts.
    #[must_use]
    pub fn of(db: &LocalDb) -> Self {
        Self {
            inbound: LocalQueue::new(db, INBOUND, false, MAX_BYTES, 5),
            outbound: LocalQueue::new(db, OUTBOUND, true, 262_144, 10),
            events: LocalQueue::new(db, EVENTS, false, 262_144, 5),
            media: LocalQueue::new(db, MEDIA, false, 262_144, 5),
            fallback: LocalQueue::new(db, FALLBACK, false, 262_144, 5),
        }
    }

    /// Every queue and its DLQ.
    #[must_use]
    pub fn all(&self) -> Vec<LocalQueue> {
        [&self.inbound, &self.outbound, &self.events, &self.media, &self.fallback]
            .into_iter()
            .flat_map(|q| [q.clone(), q.dlq()])
            .collect()
    }

    /// A queue by name, DLQs included (`inbound-dlq`, ...).
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<LocalQueue> {
        self.all().into_iter().find(|q| q.name() == name)
    }
}

/// Opens the local database of a data directory.
pub fn open(data_dir: &Path) -> Result<LocalDb, String> {
    LocalDb::open(&data_dir.join(DB_FILE)).map_err(|e| e.to_string())
}

/// Puts a SendRequest on the local outbound queue, grouped by number and recipient as on SQS.
/// Returns false when the same idempotency key was queued within five minutes.
pub fn enqueue(outbound: &LocalQueue, request: &Value) -> Result<bool, String> {
    let text = |key: &str| request.get(key).and_then(Value::as_str).unwrap_or_default();
    let group = format!("{}#{}", text("phone_number_id"), if text("to").is_empty() { "read" } else { text("to") });
    let key = request.get("idempotency_key").and_then(Value::as_str);
    outbound.send(&request.to_string(), Some(&group), key).map_err(|e| e.to_string())
}

/// A running local stack.
pub struct DevStack {
    /// `http://<listen>/webhook`.
    pub webhook_url: String,
    /// The simulator, unless the real Graph API is used.
    pub simulator: Option<Simulator>,
    /// The database.
    pub db: LocalDb,
    /// The queues.
    pub queues: Queues,
    /// The state.
    pub state: LocalState,
    /// The fallback SMS and e-mails, printed instead of sent.
    pub outbox: Outbox,
    server: HttpServer,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The largest webhook body `wa dev` accepts: Meta's webhooks reach 3 MB (API Gateway takes
/// 10 MB); axum's default of 2 MiB answered 413 to the largest.
pub const WEBHOOK_MAX_BYTES: usize = 3 * 1024 * 1024;

/// The webhook endpoint as an HTTP router: `GET` goes to the webhook-verify handler, anything else
/// to webhook-ingest, each given the request as API Gateway would (the same handler code as the
/// Lambdas). Bodies up to [`WEBHOOK_MAX_BYTES`].
pub fn webhook_router<Q, B, S, V>(ingest: Arc<Ingest<Q, B, S>>, verify: Arc<V>) -> axum::Router
where
    Q: EventQueue + Send + Sync + 'static,
    B: BlobStore + Send + Sync + 'static,
    S: AppRouting + Send + Sync + 'static,
    V: AppRouting + Send + Sync + 'static,
{
    axum::Router::new()
        .fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let ingest = ingest.clone();
                let verify = verify.clone();
                async move {
                    let mut request = lambda_http::http::Request::builder().method(method.clone()).uri(uri);
                    for (name, value) in &headers {
                        request = request.header(name, value);
                    }
                    let Ok(request) = request.body(lambda_http::Body::from(body.to_vec())) else {
                        return (axum::http::StatusCode::BAD_REQUEST, b"bad request".to_vec());
                    };
                    let response = if method == axum::http::Method::GET {
                        webhook_verify::handle(verify.as_ref(), &request).await
                    } else {
                        webhook_ingest::handle(ingest.as_ref(), &request).await
                    };
                    let status = axum::http::StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                    (status, response.body().to_vec())
                }
            },
        )
        .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_MAX_BYTES))
}

fn dev_secrets(real: Option<&RealGraph>) -> AppSecrets {
    AppSecrets {
        app_id: DEV_APP_ID.into(),
        app_secret: real.map_or_else(|| DEV_APP_SECRET.into(), |r| r.app_secret.clone()),
        verify_token: real.map_or_else(|| DEV_VERIFY_TOKEN.into(), |r| r.verify_token.clone()),
        access_token: real.map_or_else(|| DEV_ACCESS_TOKEN.into(), |r| r.access_token.clone()),
        phone_number_tokens: std::collections::BTreeMap::new(),
    }
}

impl DevStack {
    /// Starts every part; returns once the webhook server listens.
    pub async fn start(options: &DevOptions) -> Result<Self, String> {
        let db = open(&options.data_dir)?;
        db.flush_every_commit(options.flush).map_err(|e| e.to_string())?;
        let queues = Queues::of(&db);
        let state = LocalState::new(&db);
        let secrets = LocalSecrets(Arc::new(dev_secrets(options.real_graph.as_ref())));

        let listener = std::net::TcpListener::bind(&options.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let webhook_url = format!("http://{address}/webhook");

        let graph_base = options.real_graph.as_ref().map(|r| r.base.clone());
        let (simulator, graph) = match &options.real_graph {
            Some(real) => {
                (None, GraphClient::new(&real.base, wa_infra::graph::DEFAULT_VERSION, Duration::from_secs(10))?)
            }
            None => {
                let config = SimConfig {
                    access_token: DEV_ACCESS_TOKEN.into(),
                    app_id: DEV_APP_ID.into(),
                    app_secret: DEV_APP_SECRET.into(),
                    webhook_url: Some(webhook_url.clone()),
                    status_delay: Duration::from_millis(300),
                    messages_per_second: options.messages_per_second,
                    messaging_limit: match options.messaging_limit {
                        Some(wa_core::limit::Tier::Limited(limit)) => Some(limit),
                        _ => None,
                    },
                    ..SimConfig::default()
                };
                let simulator = Simulator::start(&options.simulator_listen, config).await.map_err(|e| e.to_string())?;
                let graph =
                    GraphClient::new(&simulator.base_url(), wa_infra::graph::DEFAULT_VERSION, Duration::from_secs(10))?;
                (Some(simulator), graph)
            }
        };

        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        // The webhook: the verify and ingest handlers behind one HTTP server.
        let ingest = Arc::new(Ingest {
            queue: queues.inbound.clone(),
            blobs: LocalBlobs::new(&db),
            secrets: secrets.clone(),
            max_event_age_s: options.max_event_age_s,
        });
        let app = webhook_router(ingest, Arc::new(secrets.clone()));
        let server = HttpServer::start(listener, app, crate::serve::threads_per_machine())
            .map_err(|e| format!("cannot start the webhook server: {e}"))?;

        // The event processor on the inbound queue.
        let processor = Arc::new(Processor {
            dedupe: state.clone(),
            state: state.clone(),
            events: queues.events.clone(),
            blobs: LocalBlobs::new(&db),
            keywords: OptOutKeywords::default(),
            media: Some(queues.media.clone()),
            portfolios: wa_core::limit::Portfolios::default(),
            numbers_seen: std::sync::Mutex::default(),
        });
        if !options.webhook_only {
            tasks.push(tokio::spawn(consume(queues.inbound.clone(), stopped.clone(), move |event, deadline| {
                let processor = processor.clone();
                async move { processor.handle(&event, deadline).await }
            })));
        }

        // The sender on the outbound queue (every number at the default rate until a
        // THROUGHPUT_UPGRADE lifts it).
        let sender = Arc::new(Sender {
            graph,
            idempotency: state.clone(),
            throttle: state.clone(),
            events: queues.events.clone(),
            redelivery: queues.outbound.clone(),
            secrets: secrets.clone(),
            conversations: state.clone(),
            objects: LocalBlobs::new(&db),
            // Invocations end 9 s after they start here (the local queue's visibility timeout).
            config: SenderConfig {
                default_rate: options.messages_per_second,
                deadline_reserve: Duration::from_secs(3),
                messaging_limit: options.messaging_limit,
                ..SenderConfig::default()
            },
            lead: sender::SlotLead::default(),
        });
        if !options.webhook_only {
            // As many pollers as the template's event source mapping runs senders
            // (`SenderMaxConcurrency`); the FIFO queue keeps each recipient's messages in order.
            for _ in 0..options.sender_pollers.max(1) {
                let sender = sender.clone();
                tasks.push(tokio::spawn(consume(queues.outbound.clone(), stopped.clone(), move |event, deadline| {
                    let sender = sender.clone();
                    async move { sender.handle(&event, deadline).await }
                })));
            }
        }

        // The media fetcher on the media queue: files into the local blob store.
        let media_base = simulator.as_ref().map(Simulator::base_url).or(graph_base).unwrap_or_default();
        let fetcher = Arc::new(MediaFetcher {
            graph: GraphMedia::new(&media_base, wa_infra::graph::DEFAULT_VERSION, Duration::from_secs(30))?,
            store: LocalBlobs::new(&db),
            events: queues.events.clone(),
            secrets,
            dedupe: state.clone(),
            config: FetchConfig::default(),
        });
        if !options.webhook_only {
            tasks.push(tokio::spawn(consume(queues.media.clone(), stopped.clone(), move |event, deadline| {
                let fetcher = fetcher.clone();
                async move { fetcher.handle(&event, deadline).await }
            })));
        }

        // The fallback function on its queue, which the bus's fallback rule fills (routed here).
        let outbox = Outbox::new(options.quiet_outbox);
        let fallback =
            Arc::new(Fallback { state: state.clone(), events: queues.events.clone(), notifier: outbox.clone() });
        if !options.webhook_only {
            tasks.push(tokio::spawn(route(queues.events.clone(), queues.fallback.clone(), stopped.clone())));
            tasks.push(tokio::spawn(consume(queues.fallback.clone(), stopped.clone(), move |event, deadline| {
                let fallback = fallback.clone();
                async move { fallback.handle(&event, deadline).await }
            })));
        }

        tasks.push(tokio::spawn(expire(queues.all(), state.clone(), LocalBlobs::new(&db), stopped.clone())));

        Ok(Self { webhook_url, simulator, db, queues, state, outbox, server, shutdown, tasks })
    }

    /// Stops every loop and the server.
    pub async fn stop(self) {
        // The webhook first: what it accepted is queued before the consumers stop.
        self.server.stop().await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The SQS event Lambda would deliver for these messages.
fn sqs_event(queue: &LocalQueue, batch: &[Received]) -> SqsEvent {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            let mut attributes = json!({
                "ApproximateReceiveCount": m.receives.to_string(),
                "SentTimestamp": m.sent_at_ms.to_string(),
            });
            if let Some(group) = &m.group {
                attributes["MessageGroupId"] = json!(group);
            }
            json!({
                "messageId": m.id.to_string(),
                "receiptHandle": m.receipt,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:local:000000000000:{}", queue.name()),
                "awsRegion": "local",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap_or_default()
}

/// Polls `queue` like Lambda's event source mapping: batches of up to 10, the handler's
/// `batchItemFailures` stay (and come back after the visibility timeout or their delay), the rest
/// is deleted.
async fn consume<H, F>(queue: LocalQueue, mut stop: watch::Receiver<bool>, handler: H)
where
    H: Fn(SqsEvent, u64) -> F,
    F: std::future::Future<Output = SqsBatchResponse>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match queue.receive(10, VISIBILITY) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(queue = queue.name(), %error, "cannot receive");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let deadline = wa_infra::telemetry::now_millis() + VISIBILITY.as_millis() as u64 - 1000;
        let response = handler(sqs_event(&queue, &batch), deadline).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let handled: Vec<&str> =
            batch.iter().filter(|m| !failed.contains(&m.id.to_string().as_str())).map(|m| m.receipt.as_str()).collect();
        if let Err(error) = queue.delete_all(&handled) {
            // They come back after the visibility timeout; the handlers are idempotent.
            tracing::error!(queue = queue.name(), %error, "cannot delete handled messages");
        }
    }
}

/// The local stand-in for the bus's fallback rule: every event published to the events queue from
/// now on that [`wa_core::fallback::wants`] is copied to the fallback queue (as EventBridge does,
/// after the publish, at least once).
async fn route(events: LocalQueue, fallback: LocalQueue, mut stop: watch::Receiver<bool>) {
    let mut last = events.last_id().unwrap_or(0);
    loop {
        if let Ok(batch) = events.peek(last, 100) {
            let mut wanted = Vec::new();
            let mut next = last;
            for (id, body, _) in batch {
                next = id;
                if let Ok(event) = serde_json::from_str::<Value>(&body)
                    && wa_core::fallback::wants(&wa_core::fanout::fields(&event))
                {
                    wanted.push(body);
                }
            }
            match fallback.publish(&wanted).await {
                Ok(()) => last = next,
                Err(error) => tracing::error!(%error, "cannot route events to the fallback queue; retrying"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
    }
}

/// Deletes messages past their queue's retention period (7 days, DLQs 14, as the template sets
/// them on SQS), send records, dedupe claims, message statuses and recipients' 131056 runs past
/// their expiry (DynamoDB's TTL), and claim-checked events and parked bodies past the payload
/// bucket's lifecycle (15 days, a year), at start and then every minute, so that a local stack
/// left running does not grow without end: nothing consumes the events queue locally, and every
/// event leaves a dedupe claim.
async fn expire(queues: Vec<LocalQueue>, state: LocalState, blobs: LocalBlobs, mut stop: watch::Receiver<bool>) {
    loop {
        let now_s = wa_infra::telemetry::now_millis() / 1000;
        match state.expire(now_s) {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "deleted state records past their expiry"),
            Err(error) => tracing::error!(%error, "cannot delete expired state records"),
        }
        match blobs.expire(now_s, &webhook_ingest::BLOB_LIFECYCLE_DAYS) {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "deleted claim-checked events and parked bodies past their lifecycle"),
            Err(error) => tracing::error!(%error, "cannot delete expired blobs"),
        }
        for queue in &queues {
            match queue.expire() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(queue = queue.name(), expired = n, "deleted messages past the retention period")
                }
                Err(error) => tracing::error!(queue = queue.name(), %error, "cannot delete expired messages"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
    }
}

/// `…1234`: enough of a phone number to tell users apart in a console, no more.
#[must_use]
pub fn mask(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

fn short(wamid: &str) -> String {
    let tail: String = wamid.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    format!("wamid…{tail}")
}

/// One line per event of the events queue, for a person to follow.
#[must_use]
pub fn describe(event: &Value) -> String {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    match event.get("kind").and_then(Value::as_str).unwrap_or_default() {
        "send_result" => {
            let to = mask(&text(event, "to"));
            match text(event, "status").as_str() {
                "accepted" => {
                    let fallback = if event["used_fallback"] == json!(true) { " (the fallback template)" } else { "" };
                    format!("→ sent        to {to}{fallback}: accepted, {}", short(&text(event, "wamid")))
                }
                status => {
                    let reason = event["error"]["reason"].as_str().unwrap_or_default();
                    format!("✗ not sent    to {to}: {status} ({reason})")
                }
            }
        }
        kind @ ("fallback_sent" | "fallback_failed" | "fallback_skipped") => {
            let channel = event["channel"].as_str().unwrap_or("fallback");
            let why = event["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
            let done = kind.trim_start_matches("fallback_");
            format!("✉ fallback    {channel} {done} after {}{why}", text(event, "trigger"))
        }
        "message" => {
            let payload = &event["payload"];
            let kind = text(payload, "type");
            let media = match (event["media"]["key"].as_str(), event["media"]["error"]["reason"].as_str()) {
                (Some(key), _) => format!("; stored as {key} ({} bytes)", event["media"]["size"]),
                (None, Some(reason)) => format!("; media not stored: {reason}"),
                _ => String::new(),
            };
            format!(
                "← message     from {} ({kind}), {}{media}",
                mask(&text(event, "user_id")),
                short(&text(payload, "id"))
            )
        }
        "status" => {
            let payload = &event["payload"];
            let pricing = match (payload["pricing"]["category"].as_str(), payload["pricing"]["type"].as_str()) {
                (Some(category), Some(kind)) => format!(" ({category}/{kind})"),
                _ => String::new(),
            };
            format!(
                "✓ status      {} {} to {}{pricing}",
                text(payload, "status"),
                short(&text(payload, "id")),
                mask(&text(event, "user_id"))
            )
        }
        other => format!("· event       {other}"),
    }
}

/// Prints every new event of the events queue until stopped.
pub async fn follow(events: LocalQueue, mut stop: watch::Receiver<bool>, out: impl Fn(&str) + Send) {
    let mut last = events.last_id().unwrap_or(0);
    loop {
        if let Ok(batch) = events.peek(last, 100) {
            for (id, body, _) in batch {
                last = id;
                if let Ok(event) = serde_json::from_str::<Value>(&body) {
                    out(&describe(&event));
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
    }
}

impl DevStack {
    /// A receiver that turns true when the stack stops.
    #[must_use]
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_never_show_numbers_or_text() {
        assert_eq!(mask("+1 650-555-1234"), "…1234");
        let line = describe(&json!({"kind": "message", "user_id": "16505551234",
            "payload": {"type": "text", "id": "wamid.ABCDEFGHIJ", "text": {"body": "my secret order"}}}));
        assert!(!line.contains("16505551234") && !line.contains("secret order"), "{line}");
        assert!(line.contains("…1234") && line.contains("(text)"), "{line}");
        let line = describe(&json!({"kind": "send_result", "to": "16505551234", "status": "window_closed",
            "error": {"reason": "outside the 24 h window"}}));
        assert!(line.contains("window_closed") && !line.contains("16505551234"), "{line}");
    }
}
