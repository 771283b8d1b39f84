//! Ingest → processor under faults: signed webhook deliveries (1–100 items, messages and
//! statuses, some claim-checked) sent as Meta does — duplicated, shuffled, and redelivered until
//! answered 200 — to webhook-ingest processes, with SQS, DynamoDB and S3 faults and process kills
//! (after the enqueue and before the answer; between the state write and the forward; at random
//! calls), the event processor consuming the inbound queue while ingest fills it, and a consumer
//! draining the events queue. Counts every acknowledged item against what reached consumers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::{Value, json};

use super::lambda::{Answer, Function, Kill};
use super::proxy::{Proxy, Rates, Tally};
use super::{Report, Rng, binary, lock, log_dir};
use crate::{create_bucket, create_secret, create_state_table, moto, moto_config, secret_json, unique};

const PHONE: &str = "106540352242922";
const APP_SECRET: &str = "fault-run-app-secret";
/// Items larger than this are claim-checked by ingest (its `INBOUND_MAX_MESSAGE_BYTES`).
const MAX_MESSAGE_BYTES: usize = 4096;

/// The run's size and fault rates.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Webhook deliveries (before duplicates).
    pub deliveries: usize,
    /// The seed of every choice.
    pub seed: u64,
    /// SQS send failures (5xx, throttling, partial batch failures), per call.
    pub sqs: f64,
    /// DynamoDB throttling and errors, per call (the processor's).
    pub dynamodb: f64,
    /// Ingest invocations killed after the enqueue, before the answer.
    pub ingest_kills: f64,
    /// Processor invocations killed (half between the state write and the forward, the rest at
    /// a random AWS call).
    pub processor_kills: f64,
    /// Deliveries Meta sends twice.
    pub duplicates: f64,
    /// webhook-ingest processes (concurrent deliveries).
    pub ingest_instances: usize,
    /// event-processor processes (concurrent batches).
    pub processor_instances: usize,
    /// Give up after this long.
    pub limit: Duration,
    /// The share of items that are users' messages (the rest statuses).
    pub messages: f64,
    /// The share of messages over the claim-check size.
    pub large: f64,
    /// Every delivery carries one item (as Meta sends most).
    pub one_item: bool,
}

impl Plan {
    /// No faults, no duplicates, one item per delivery, `messages` of them users' messages: the
    /// cost run ([`crate::faults::cost`]).
    #[must_use]
    pub fn clean(deliveries: usize, seed: u64, messages: f64) -> Self {
        Self {
            sqs: 0.0,
            dynamodb: 0.0,
            ingest_kills: 0.0,
            processor_kills: 0.0,
            duplicates: 0.0,
            messages,
            large: 0.0,
            one_item: true,
            ..Self::new(deliveries, seed)
        }
    }

    /// The rates at `deliveries` deliveries.
    #[must_use]
    pub fn new(deliveries: usize, seed: u64) -> Self {
        Self {
            deliveries,
            seed,
            sqs: 0.10,
            dynamodb: 0.10,
            ingest_kills: 0.05,
            processor_kills: 0.05,
            duplicates: 0.20,
            ingest_instances: 2,
            processor_instances: 8,
            limit: Duration::from_secs(900),
            messages: 0.5,
            large: 0.02,
            one_item: false,
        }
    }
}

struct Delivery {
    body: Vec<u8>,
    event_ids: Vec<String>,
    statuses: Vec<(String, u8)>,
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const STATUSES: [&str; 3] = ["sent", "delivered", "read"];

/// Builds the deliveries: 90 % with one item, 9 % with 2–5, 1 % with 6–100; half messages (2 % of
/// them over the claim-check size), half statuses of outbound messages (each status once or more,
/// in any order).
fn deliveries(plan: &Plan, rng: &mut Rng) -> Vec<Delivery> {
    let outbound = (plan.deliveries / 2).max(1) as u64;
    let now = now_s();
    (0..plan.deliveries)
        .map(|i| {
            let items = match if plan.one_item { 99 } else { rng.below(100) } {
                0 => 6 + rng.below(95),
                1..=9 => 2 + rng.below(4),
                _ => 1,
            };
            let mut changes = Vec::new();
            let mut event_ids = Vec::new();
            let mut statuses = Vec::new();
            for j in 0..items {
                let user = format!("1650555{:04}", rng.below(300));
                let contacts = json!([{"profile": {"name": "Fault Run"}, "wa_id": user}]);
                let metadata = json!({"display_phone_number": "15550001111", "phone_number_id": PHONE});
                let value = if rng.chance(plan.messages) {
                    let wamid = format!("wamid.in.{i}.{j}");
                    let text = if rng.chance(plan.large) { "x".repeat(6000) } else { format!("hello {i}.{j}") };
                    event_ids.push(wamid.clone());
                    json!({"messaging_product": "whatsapp", "metadata": metadata, "contacts": contacts,
                           "messages": [{"from": user, "id": wamid, "timestamp": now.to_string(), "type": "text",
                                         "text": {"body": text}}]})
                } else {
                    let wamid = format!("wamid.out.{}", rng.below(outbound));
                    let rank = u8::try_from(rng.below(3)).unwrap_or(0);
                    let status = STATUSES[usize::from(rank)];
                    event_ids.push(format!("{wamid}:{status}"));
                    statuses.push((wamid.clone(), rank));
                    json!({"messaging_product": "whatsapp", "metadata": metadata,
                           "statuses": [{"id": wamid, "status": status, "timestamp": now.to_string(), "recipient_id": user,
                                         "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}}]})
                };
                changes.push(json!({"field": "messages", "value": value}));
            }
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": changes}]});
            Delivery { body: body.to_string().into_bytes(), event_ids, statuses }
        })
        .collect()
}

fn apigw_event(body: &[u8]) -> String {
    let signature = wa_core::signature::sign(APP_SECRET.as_bytes(), body);
    json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature,
                    "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "facebookexternalua"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "173.252.127.1", "userAgent": "facebookexternalua"}, "requestId": "req-1", "routeKey": "POST /webhook",
            "stage": "$default", "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000u64},
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    })
    .to_string()
}

async fn standard_queue(sqs: &aws_sdk_sqs::Client, prefix: &str, visibility_s: u32) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility_s.to_string())
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Runs the plan; the report's goals: 0 acknowledged-but-lost, no duplicate downstream beyond
/// the ambiguous forwards, statuses never downgraded, the cost ledger exact.
///
/// # Panics
/// When moto or the function binaries are missing.
pub async fn run(plan: &Plan) -> Report {
    let started = Instant::now();
    let moto = moto();
    let config = moto_config().await;
    // DynamoDB on a moto of its own: one Python process is the bottleneck otherwise.
    let dynamodb = crate::Moto::start();
    let dynamodb_config = crate::sdk_config(&dynamodb.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let table = create_state_table(&dynamodb_config).await;
    let bucket = create_bucket(&config).await;
    let secret = create_secret(&config, &secret_json(APP_SECRET, "verify"), None, None).await;
    // The template's timeouts scaled down (processor 30 s → 10 s, inbound visibility 180 s →
    // 12 s), so that a killed batch comes back within the run.
    let inbound = standard_queue(&sqs, "faults-inbound", 12).await;
    let events = standard_queue(&sqs, "faults-events", 30).await;
    let logs = log_dir("ingest");
    let (ingest_tally, processor_tally) = (Tally::default(), Tally::default());
    let mut rng = Rng::new(plan.seed);

    let mut ingests = Vec::new();
    let mut processors = Vec::new();
    let (mut ingest_proxies, mut processor_proxies) = (Vec::new(), Vec::new());
    for i in 0..plan.ingest_instances.max(plan.processor_instances) {
        let rates = Rates { sqs: plan.sqs, dynamodb: 0.0, s3: plan.sqs / 2.0 };
        let proxy = Proxy::start(&moto.endpoint, &dynamodb.endpoint, rates, rng.next_u64(), ingest_tally.clone()).await;
        let env = vec![
            ("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone()),
            ("WHATSAPP_SECRET_ID".to_owned(), secret.clone()),
            ("INBOUND_QUEUE_URL".to_owned(), inbound.clone()),
            ("PAYLOAD_BUCKET".to_owned(), bucket.clone()),
            ("INBOUND_MAX_MESSAGE_BYTES".to_owned(), MAX_MESSAGE_BYTES.to_string()),
        ];
        let function =
            Function::new("webhook-ingest", binary("webhook-ingest"), env, logs.join(format!("ingest-{i}.log")));
        proxy.attach(&function);
        if i < plan.ingest_instances {
            ingests.push(function);
            ingest_proxies.push(proxy);
        }

        let rates = Rates { sqs: plan.sqs, dynamodb: plan.dynamodb, s3: plan.sqs / 2.0 };
        let proxy =
            Proxy::start(&moto.endpoint, &dynamodb.endpoint, rates, rng.next_u64(), processor_tally.clone()).await;
        let env = vec![
            ("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone()),
            ("STATE_TABLE".to_owned(), table.clone()),
            ("EVENTS_QUEUE_URL".to_owned(), events.clone()),
            ("PAYLOAD_BUCKET".to_owned(), bucket.clone()),
        ];
        let function =
            Function::new("event-processor", binary("event-processor"), env, logs.join(format!("processor-{i}.log")));
        proxy.attach(&function);
        if i < plan.processor_instances {
            processors.push(function);
            processor_proxies.push(proxy);
        }
    }

    // Meta: every delivery, 20 % of them twice, in shuffled order; anything not answered 200 is
    // sent again (at the back of the line).
    let all = Arc::new(deliveries(plan, &mut rng));
    let mut order: Vec<usize> = (0..all.len()).collect();
    for i in 0..all.len() {
        if rng.chance(plan.duplicates) {
            order.push(i);
        }
    }
    rng.shuffle(&mut order);
    let sent_deliveries = order.len();
    let line = Arc::new(std::sync::Mutex::new(order.into_iter().collect::<VecDeque<usize>>()));
    let acknowledged = Arc::new(std::sync::Mutex::new(vec![false; all.len()]));
    let attempts = Arc::new(AtomicU64::new(0));
    let ingest_done = Arc::new(AtomicBool::new(false));
    let processors_done = Arc::new(AtomicBool::new(false));
    let give_up = started + plan.limit;

    let mut meta = Vec::new();
    for function in &ingests {
        let (function, line, all, acknowledged, attempts) =
            (function.clone(), line.clone(), all.clone(), acknowledged.clone(), attempts.clone());
        let (sqs, inbound) = (sqs.clone(), inbound.clone());
        let mut rng = Rng::new(rng.next_u64());
        let kills = plan.ingest_kills;
        meta.push(tokio::spawn(async move {
            loop {
                let Some(index) = lock(&line).pop_front() else { break };
                if Instant::now() > give_up {
                    break;
                }
                // Keep the inbound queue short (moto slows down as a queue grows), as a
                // processor keeping up would.
                while super::backlog(&sqs, &inbound).await > 200 && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                attempts.fetch_add(1, Ordering::SeqCst);
                let kill = if rng.chance(kills) { Kill::AtAnswer } else { Kill::Never };
                let answer = function.invoke(apigw_event(&all[index].body), kill, Duration::from_secs(10)).await;
                let ok = matches!(&answer, Answer::Ok(body)
                    if serde_json::from_str::<Value>(body).is_ok_and(|v| v["statusCode"] == 200));
                if ok {
                    lock(&acknowledged)[index] = true;
                } else {
                    lock(&line).push_back(index);
                }
            }
        }));
    }

    let mut workers = Vec::new();
    for function in &processors {
        let (function, sqs, inbound, ingest_done) =
            (function.clone(), sqs.clone(), inbound.clone(), ingest_done.clone());
        let mut rng = Rng::new(rng.next_u64());
        let kills = plan.processor_kills;
        workers.push(tokio::spawn(async move {
            let mut invocations = 0u64;
            let mut max_receives = 0u64;
            loop {
                if Instant::now() > give_up {
                    break;
                }
                let Some(batch) = super::poll(&sqs, &inbound).await else {
                    if ingest_done.load(Ordering::SeqCst) && super::backlog(&sqs, &inbound).await == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                invocations += 1;
                let kill = if rng.chance(kills) {
                    match rng.below(2) {
                        // Between the state write and the forward.
                        0 => Kill::AtCall { nth: 1, after_forward: false, op: Some("AmazonSQS.SendMessageBatch") },
                        _ => Kill::AtCall {
                            nth: u32::try_from(1 + rng.below(12)).unwrap_or(1),
                            after_forward: rng.chance(0.5),
                            op: None,
                        },
                    }
                } else {
                    Kill::Never
                };
                let event = serde_json::to_string(&batch.event).expect("an SQS event");
                let receives = batch
                    .event
                    .records
                    .iter()
                    .filter_map(|r| r.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse::<u64>().ok()))
                    .max()
                    .unwrap_or(1);
                max_receives = max_receives.max(receives);
                if let Answer::Ok(body) = function.invoke(event, kill, Duration::from_secs(10)).await
                    && let Ok(response) = serde_json::from_str::<SqsBatchResponse>(&body)
                {
                    super::settle(&sqs, &inbound, &batch, &response).await;
                }
            }
            (invocations, max_receives)
        }));
    }

    let consumer = {
        let (sqs, events, processors_done) = (sqs.clone(), events.clone(), processors_done.clone());
        tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            loop {
                let Some(batch) = super::poll(&sqs, &events).await else {
                    if processors_done.load(Ordering::SeqCst) && super::backlog(&sqs, &events).await == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                for record in &batch.event.records {
                    let body: Value =
                        serde_json::from_str(record.body.as_deref().unwrap_or_default()).unwrap_or_default();
                    let id = body["event_id"].as_str().unwrap_or("(no event_id)").to_owned();
                    *seen.entry(id).or_default() += 1;
                }
                super::settle(&sqs, &events, &batch, &SqsBatchResponse::default()).await;
            }
            seen
        })
    };

    for task in meta {
        let _ = task.await;
    }
    let ingest_seconds = started.elapsed().as_secs_f64();
    ingest_done.store(true, Ordering::SeqCst);
    let (mut invocations, mut max_receives) = (0, 0);
    for task in workers {
        let (n, receives) = task.await.unwrap_or((0, 0));
        invocations += n;
        max_receives = max_receives.max(receives);
    }
    processors_done.store(true, Ordering::SeqCst);
    let seen = consumer.await.unwrap_or_default();
    for function in ingests.iter().chain(&processors) {
        function.stop();
    }

    // What Meta saw acknowledged, against what consumers got.
    let acknowledged = lock(&acknowledged).clone();
    let mut expected: HashSet<&str> = HashSet::new();
    let mut items = 0u64;
    let mut final_status: BTreeMap<&str, u8> = BTreeMap::new();
    for (delivery, acked) in all.iter().zip(&acknowledged) {
        items += delivery.event_ids.len() as u64;
        if *acked {
            expected.extend(delivery.event_ids.iter().map(String::as_str));
            for (wamid, rank) in &delivery.statuses {
                let best = final_status.entry(wamid.as_str()).or_insert(*rank);
                *best = (*best).max(*rank);
            }
        }
    }
    let lost: Vec<&&str> = expected.iter().filter(|id| !seen.contains_key(**id)).collect();
    let duplicated: u64 = seen.values().map(|n| n - 1).sum();
    let unexpected = seen.keys().filter(|id| !expected.contains(id.as_str())).count();

    let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&dynamodb_config), table.clone());
    let mut downgraded = 0;
    // The status record itself (`StateTable::message` also queries the by_wamid index, which
    // moto answers by scanning the table: minutes for thousands of messages).
    let ddb = aws_sdk_dynamodb::Client::new(&dynamodb_config);
    for (wamid, rank) in &final_status {
        use aws_sdk_dynamodb::types::AttributeValue;
        let stored = ddb
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(format!("MSG#{wamid}")))
            .key("sk", AttributeValue::S("MSG".into()))
            .send()
            .await
            .ok()
            .and_then(|out| out.item)
            .and_then(|item| item.get("status").and_then(|v| v.as_s().ok()).cloned());
        if stored.as_deref() != Some(STATUSES[usize::from(*rank)]) {
            downgraded += 1;
        }
    }
    let month = wa_core::conversation::month_of(i64::try_from(now_s()).unwrap_or(0));
    let ledger: u64 = state.costs(PHONE, &month).await.unwrap_or_default().iter().map(|(_, n)| n).sum();

    let mut report = Report { path: "ingest → processor → events queue".into(), items, ..Report::default() };
    for (kind, n) in ingest_tally.snapshot() {
        report.injected.insert(format!("ingest: {kind}"), n);
    }
    for (kind, n) in processor_tally.snapshot() {
        report.injected.insert(format!("processor: {kind}"), n);
    }
    let ingest_kills: u64 = ingests.iter().map(Function::kills).sum();
    let processor_kills: u64 = processors.iter().map(Function::kills).sum();
    report.injected.insert("ingest: process killed after the enqueue, before the answer".into(), ingest_kills);
    report.acknowledged = expected.len() as u64;
    report.delivered = seen.len() as u64;
    report.lost = lost.len() as u64;
    report.duplicated = duplicated;
    report.seconds = started.elapsed().as_secs_f64();
    report.usage.push(super::Usage::of("webhook-ingest", &ingests, &ingest_proxies));
    report.usage.push(super::Usage::of("event-processor", &processors, &processor_proxies));
    report.figure("deliveries (with Meta's duplicates)", sent_deliveries);
    report.figure("webhook POSTs (with redeliveries)", attempts.load(Ordering::SeqCst));
    report.figure("ingest finished after (s)", format!("{ingest_seconds:.1}"));
    report.figure("processor invocations", invocations);
    report.figure("processor processes killed (planned kills and 10 s timeouts)", processor_kills);
    report.figure("most receives of one inbound message (the template parks it after 5)", max_receives);
    report.figure("cold starts", ingests.iter().chain(&processors).map(Function::starts).sum::<u64>());
    report.figure("outbound messages with statuses", final_status.len());
    report.figure("ledger (billable messages counted)", ledger);
    // Downstream duplicates can come only from a forward whose confirmation was lost: SQS did
    // the work and answered 5xx (the SDK sends again), or the process died after the forward and
    // before marking the event forwarded (the redelivery forwards it again, logged and counted as
    // UnconfirmedForwards). Everything else (Meta's duplicates, redeliveries, ingest's ambiguous
    // enqueues, kills elsewhere) must give exactly one.
    let sqs_ambiguous = processor_tally.get("SQS 5xx after the work (ambiguous)");
    let unconfirmed = super::metric_total(&logs, "UnconfirmedForwards");
    report.figure("forwards SQS did and answered 5xx (the SDK sent again)", sqs_ambiguous);
    report.figure("events forwarded again after an unconfirmed forward (UnconfirmedForwards)", unconfirmed);
    report
        .figure("duplicates per 1,000 events", format!("{:.1}", duplicated as f64 * 1000.0 / seen.len().max(1) as f64));
    report.check("every delivery acknowledged in the end", acknowledged.iter().all(|a| *a));
    report.check(format!("0 acknowledged-but-lost (lost: {})", lost.len()), lost.is_empty());
    report.check(format!("nothing downstream that was not sent ({unexpected})"), unexpected == 0);
    report.check(
        format!(
            "duplicates downstream ({duplicated}) ≤ unconfirmed forwards + SQS's ambiguous answers ({})",
            unconfirmed + sqs_ambiguous as f64
        ),
        duplicated as f64 <= unconfirmed + sqs_ambiguous as f64,
    );
    report.check(format!("statuses never downgraded ({downgraded} differ)"), downgraded == 0);
    report.check(
        format!("cost ledger exact ({ledger} counted, {} billable messages)", final_status.len()),
        ledger == final_status.len() as u64,
    );
    let leaks = super::leaks(&logs, &[APP_SECRET, "\"1650555", " 1650555", "=1650555", "+1650555", "hello "]);
    report.check(format!("no secret, phone number or message text in the logs ({leaks:?})"), leaks.is_empty());
    if !lost.is_empty() {
        report.figure("first lost ids", format!("{:?}", lost.iter().take(5).collect::<Vec<_>>()));
    }
    report
}
