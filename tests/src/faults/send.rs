//! The sender under faults: template send requests (10 % `at_most_once`) on the FIFO outbound
//! queue, fed while sender processes drain it, with Graph faults from the simulator (5xx, timeouts
//! after Meta accepted the message, 130429 and 131056), one access-token expiry episode (the token
//! revoked at Meta and a new one put in the secret mid-run), SQS and DynamoDB faults, and 1 % of
//! invocations killed at a random AWS call. Counts outcomes per request and messages per request
//! at the simulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::{Value, json};
use wa_simulator::{Fault, FaultKind, SimConfig, Simulator, TokenInfo};

use super::lambda::{Answer, Function, Kill};
use super::proxy::{Proxy, Rates, Tally};
use super::{Report, Rng, binary, lock, log_dir, metric_total};
use crate::{create_fifo_queue, create_state_table, moto, moto_config, unique};

const APP_ID: &str = "1234567890";
const NUMBERS: [&str; 4] = ["106540352242922", "106540352242923", "106540352242924", "106540352242925"];
/// The sender's Graph timeout: the simulator's "accepted, then slow" answers take longer.
const GRAPH_TIMEOUT_MS: u64 = 1000;

/// The run's size and fault rates.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Send requests.
    pub requests: usize,
    /// The seed of every choice.
    pub seed: u64,
    /// Graph 5xx (nothing accepted), per request.
    pub graph_5xx: f64,
    /// Timeouts after Meta accepted the message (ambiguous), per request.
    pub timeouts_after_accept: f64,
    /// 130429 or 131056 (half each), per request.
    pub throttles: f64,
    /// Sender invocations killed at a random AWS call.
    pub kills: f64,
    /// Requests with `"delivery": "at_most_once"`.
    pub at_most_once: f64,
    /// SQS send faults per call (the events queue; redeliveries of the outbound queue follow).
    pub sqs: f64,
    /// DynamoDB faults per call.
    pub dynamodb: f64,
    /// Sender processes.
    pub instances: usize,
    /// Give up after this long.
    pub limit: Duration,
    /// The messaging-limit tier the senders apply (`MESSAGING_LIMIT`), when any.
    pub messaging_limit: Option<&'static str>,
}

impl Plan {
    /// No faults, no kills, every request `at_least_once`, the senders counting each recipient
    /// against a `TIER_100K` messaging limit: the cost run ([`crate::faults::cost`]).
    #[must_use]
    pub fn clean(requests: usize, seed: u64) -> Self {
        Self {
            graph_5xx: 0.0,
            timeouts_after_accept: 0.0,
            throttles: 0.0,
            kills: 0.0,
            at_most_once: 0.0,
            sqs: 0.0,
            dynamodb: 0.0,
            messaging_limit: Some("TIER_100K"),
            ..Self::new(requests, seed)
        }
    }

    /// The rates at `requests` requests.
    #[must_use]
    pub fn new(requests: usize, seed: u64) -> Self {
        Self {
            requests,
            seed,
            graph_5xx: 0.10,
            timeouts_after_accept: 0.05,
            throttles: 0.10,
            kills: 0.01,
            at_most_once: 0.10,
            sqs: 0.05,
            dynamodb: 0.02,
            instances: 4,
            // About 4-5 sends a second through moto on 2 cores (its SQS process CPU-bound): 10,000
            // take some 37 minutes; the limit is 0.3 s a request (15 minutes at least, for the
            // small runs' slow starts).
            limit: Duration::from_secs(900.max(u64::try_from(requests).unwrap_or(u64::MAX).saturating_mul(3) / 10)),
            messaging_limit: None,
        }
    }
}

struct Request {
    key: String,
    number: &'static str,
    to: String,
    at_most_once: bool,
}

fn secret(token: &str) -> String {
    json!({"app_id": APP_ID, "app_secret": "fault-run-app-secret", "verify_token": "verify", "access_token": token})
        .to_string()
}

fn body(request: &Request) -> String {
    let mut body = json!({
        "phone_number_id": request.number, "to": request.to, "idempotency_key": request.key,
        "message": {"type": "template", "template": {"name": "fault_run", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": request.key}]}]}}
    });
    if request.at_most_once {
        body["delivery"] = json!("at_most_once");
    }
    body.to_string()
}

/// The request key a message the simulator accepted carries (its template's first parameter).
fn key_of(accepted: &Value) -> Option<String> {
    accepted["template"]["components"][0]["parameters"][0]["text"].as_str().map(str::to_owned)
}

/// Runs the plan; the report's goals: exactly one outcome per request, 0 lost, duplicate messages
/// no more than the ambiguous sends the senders logged and counted, none for `at_most_once`, no
/// authentication failure after the token expiry.
///
/// # Panics
/// When moto, the simulator or the function binaries cannot start.
pub async fn run(plan: &Plan) -> Report {
    let started = Instant::now();
    let moto = moto();
    let config = moto_config().await;
    // DynamoDB on a moto of its own: one Python process is the bottleneck otherwise.
    let dynamodb = crate::Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let table = create_state_table(&crate::sdk_config(&dynamodb.endpoint).await).await;
    // The template's timeouts scaled down (sender 30 s → 10 s, visibility 180 s → 12 s).
    let outbound = create_fifo_queue(&config, 12).await;
    let events = sqs
        .create_queue()
        .queue_name(unique("faults-outcomes"))
        .send()
        .await
        .expect("create the events queue")
        .queue_url
        .expect("queue url");
    let first_token = "fault-run-token-1";
    let secret_id = unique("faults-secret");
    sm.create_secret().name(&secret_id).secret_string(secret(first_token)).send().await.expect("create the secret");
    let sim = Arc::new(
        Simulator::start(
            "127.0.0.1:0",
            SimConfig {
                access_token: first_token.into(),
                app_id: APP_ID.into(),
                username_phone_suffix: None,
                ..SimConfig::default()
            },
        )
        .await
        .expect("start the simulator"),
    );
    let logs = log_dir("send");
    let tally = Tally::default();
    let mut rng = Rng::new(plan.seed);

    // The requests and the Graph faults each one meets (the simulator applies a fault to the
    // first send to its recipient).
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let requests: Vec<Request> = (0..plan.requests)
        .map(|i| {
            let request = Request {
                key: format!("fault-{i}"),
                number: NUMBERS[i % NUMBERS.len()],
                to: format!("1651{:07}", i * 10 + 1),
                at_most_once: rng.chance(plan.at_most_once),
            };
            let roll = rng.next_u64() as f64 / u64::MAX as f64;
            let (g5, ta, th) = (plan.graph_5xx, plan.timeouts_after_accept, plan.throttles);
            let fault = if roll < g5 {
                Some(("Graph 5xx", FaultKind::HttpStatus { status: 503, accepted: false }))
            } else if roll < g5 + ta {
                Some(("Graph timeout after accepting (ambiguous)", FaultKind::Delay { millis: 2500, accepted: true }))
            } else if roll < g5 + ta + th / 2.0 {
                Some(("Graph 130429", FaultKind::Error { code: 130_429, http_status: 400 }))
            } else if roll < g5 + ta + th {
                Some(("Graph 131056", FaultKind::Error { code: 131_056, http_status: 400 }))
            } else {
                None
            };
            if let Some((name, kind)) = fault {
                *injected.entry(name.to_owned()).or_default() += 1;
                sim.inject(Fault { kind, count: 1, to: Some(request.to.clone()), endpoint: None });
            }
            request
        })
        .collect();
    let requests = Arc::new(requests);

    let mut senders = Vec::new();
    let mut proxies = Vec::new();
    for i in 0..plan.instances {
        let rates = Rates { sqs: plan.sqs, dynamodb: plan.dynamodb, s3: 0.0 };
        let proxy = Proxy::start(&moto.endpoint, &dynamodb.endpoint, rates, rng.next_u64(), tally.clone()).await;
        let mut env = vec![
            ("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone()),
            ("WHATSAPP_SECRET_ID".to_owned(), secret_id.clone()),
            ("STATE_TABLE".to_owned(), table.clone()),
            ("EVENTS_QUEUE_URL".to_owned(), events.clone()),
            ("OUTBOUND_QUEUE_URL".to_owned(), outbound.clone()),
            ("GRAPH_API_BASE".to_owned(), sim.base_url()),
            ("GRAPH_TIMEOUT_MS".to_owned(), GRAPH_TIMEOUT_MS.to_string()),
        ];
        if let Some(tier) = plan.messaging_limit {
            env.push(("MESSAGING_LIMIT".to_owned(), tier.to_owned()));
        }
        let function = Function::new("sender", binary("sender"), env, logs.join(format!("sender-{i}.log")));
        proxy.attach(&function);
        senders.push(function);
        proxies.push(proxy);
    }

    let give_up = started + plan.limit;
    let produced = Arc::new(AtomicU64::new(0));
    let producer_done = Arc::new(AtomicBool::new(false));
    let token_episode = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let producer = {
        let (sqs, outbound, requests, produced, producer_done) =
            (sqs.clone(), outbound.clone(), requests.clone(), produced.clone(), producer_done.clone());
        let (sm, secret_id, sim_token) = (sm.clone(), secret_id.clone(), sim.clone());
        let token_episode = token_episode.clone();
        tokio::spawn(async move {
            for (n, chunk) in requests.chunks(10).enumerate() {
                // Keep the queue short (moto slows down as a queue grows).
                while super::backlog(&sqs, &outbound).await > 400 && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Halfway: the access token expires at Meta; the new one is in the secret.
                if n == requests.len() / 20 && lock(&token_episode).is_none() {
                    sim_token.set_token(first_token, TokenInfo { is_valid: false, ..TokenInfo::whatsapp(APP_ID, 0) });
                    sim_token.set_token("fault-run-token-2", TokenInfo::whatsapp(APP_ID, 0));
                    sm.put_secret_value()
                        .secret_id(&secret_id)
                        .secret_string(secret("fault-run-token-2"))
                        .send()
                        .await
                        .expect("put the new token");
                    *lock(&token_episode) = Some(Instant::now());
                }
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(format!("e{i}"))
                            .message_body(body(r))
                            .message_group_id(format!("{}#{}", r.number, r.to))
                            .message_deduplication_id(&r.key)
                            .build()
                            .expect("an entry")
                    })
                    .collect();
                // The FIFO queue's deduplication ids make a repeated batch harmless: a busy moto
                // that times out is asked again.
                let mut attempt = 0;
                let out = loop {
                    match sqs.send_message_batch().queue_url(&outbound).set_entries(Some(entries.clone())).send().await
                    {
                        Ok(out) => break out,
                        Err(error) if attempt < 20 => {
                            attempt += 1;
                            eprintln!("enqueue requests failed ({error:?}); again in 1 s");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(error) => panic!("enqueue requests: {error:?}"),
                    }
                };
                assert!(out.failed.is_empty(), "moto refused requests: {:?}", out.failed);
                produced.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            producer_done.store(true, Ordering::SeqCst);
        })
    };

    // The outcomes, collected while the run goes on: a queue left to grow slows moto's SQS down
    // for every queue (its heap grows with the messages it keeps), until the harness's own
    // requests time out.
    let senders_done = Arc::new(AtomicBool::new(false));
    let collector = {
        let (sqs, events, senders_done) = (sqs.clone(), events.clone(), senders_done.clone());
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            // A batch whose delete failed comes back: each SQS message is collected once.
            let mut seen = std::collections::HashSet::new();
            loop {
                let Some(batch) = super::poll(&sqs, &events).await else {
                    if senders_done.load(Ordering::SeqCst) && super::backlog(&sqs, &events).await == 0 {
                        return outcomes;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for record in &batch.event.records {
                    if seen.insert(record.message_id.clone()) {
                        outcomes.push(record.body.clone().unwrap_or_default());
                    }
                }
                super::settle(&sqs, &events, &batch, &SqsBatchResponse::default()).await;
            }
        })
    };

    let mut workers = Vec::new();
    for function in &senders {
        let (function, sqs, outbound, producer_done) =
            (function.clone(), sqs.clone(), outbound.clone(), producer_done.clone());
        let mut rng = Rng::new(rng.next_u64());
        let kills = plan.kills;
        workers.push(tokio::spawn(async move {
            let mut invocations = 0u64;
            let mut max_receives = 0u64;
            loop {
                if Instant::now() > give_up {
                    break;
                }
                let Some(batch) = super::poll(&sqs, &outbound).await else {
                    if producer_done.load(Ordering::SeqCst) && super::backlog(&sqs, &outbound).await == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                invocations += 1;
                let kill = if rng.chance(kills) {
                    Kill::AtCall {
                        nth: u32::try_from(1 + rng.below(40)).unwrap_or(1),
                        after_forward: rng.chance(0.5),
                        op: None,
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
                    super::settle(&sqs, &outbound, &batch, &response).await;
                }
            }
            (invocations, max_receives)
        }));
    }

    let _ = producer.await;
    let (mut invocations, mut max_receives) = (0, 0);
    for task in workers {
        let (n, receives) = task.await.unwrap_or((0, 0));
        invocations += n;
        max_receives = max_receives.max(receives);
    }
    for function in &senders {
        function.stop();
    }
    // Every outcome (the collector deletes them ten at a time as they come).
    senders_done.store(true, Ordering::SeqCst);
    let outcomes = collector.await.expect("the outcome collector");

    // Outcomes per request; messages per request at Meta.
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for text in &outcomes {
        let outcome: Value = serde_json::from_str(text).unwrap_or_default();
        by_key.entry(outcome["idempotency_key"].as_str().unwrap_or_default().to_owned()).or_default().push(outcome);
    }
    let mut messages: HashMap<String, u64> = HashMap::new();
    for accepted in sim.accepted() {
        if let Some(key) = key_of(&accepted.body) {
            *messages.entry(key).or_default() += 1;
        }
    }
    let lost = requests.iter().filter(|r| !by_key.contains_key(&r.key)).count() as u64;
    let duplicated: u64 = by_key.values().map(|v| v.len() as u64 - 1).sum();
    let conflicting = by_key
        .values()
        .filter(|v| v.iter().any(|o| o["status"] != v[0]["status"] || o["wamid"] != v[0]["wamid"]))
        .count();
    let mut status_counts: BTreeMap<String, u64> = BTreeMap::new();
    for outcomes in by_key.values() {
        *status_counts.entry(outcomes[0]["status"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let at_most_once: HashMap<&str, bool> = requests.iter().map(|r| (r.key.as_str(), r.at_most_once)).collect();
    let duplicate_messages: u64 = messages.values().map(|n| n - 1).sum();
    let at_most_once_twice =
        messages.iter().filter(|(k, n)| **n > 1 && at_most_once.get(k.as_str()).copied().unwrap_or(false)).count();
    let accepted_without_message =
        by_key.iter().filter(|(k, v)| v[0]["status"] == "accepted" && !messages.contains_key(k.as_str())).count();
    let auth_failures =
        by_key.values().filter(|v| v[0]["error"]["class"] == "refresh_token" || v[0]["error"]["code"] == 190).count();
    let token_refusals = sim.seen().iter().filter(|s| s.code == Some(190)).count();
    let throttles_seen = sim.seen().iter().filter(|s| s.code == Some(130_429)).count() as u64;
    let unplanned_throttles = throttles_seen.saturating_sub(injected.get("Graph 130429").copied().unwrap_or(0));
    let ambiguous_counted = metric_total(&logs, "AmbiguousSends");
    let reclaimed = metric_total(&logs, "ReclaimedSends");
    let unconfirmed = metric_total(&logs, "UnconfirmedOutcomes");

    let mut report =
        Report { path: "sender → Graph → outcomes".into(), items: plan.requests as u64, ..Report::default() };
    report.injected = injected;
    for (kind, n) in tally.snapshot() {
        report.injected.insert(kind, n);
    }
    report.injected.insert("access token expired mid-run (episodes)".into(), u64::from(lock(&token_episode).is_some()));
    report.acknowledged = produced.load(Ordering::SeqCst);
    report.delivered = by_key.len() as u64;
    report.lost = lost;
    report.duplicated = duplicated;
    report.seconds = started.elapsed().as_secs_f64();
    report.usage.push(super::Usage::of("sender", &senders, &proxies));
    report.figure("outcomes by status", format!("{status_counts:?}"));
    report.figure("sender invocations", invocations);
    report.figure(
        "sender processes killed (planned kills and 10 s timeouts)",
        senders.iter().map(Function::kills).sum::<u64>(),
    );
    report.figure("most receives of one request (the template parks it after 10)", max_receives);
    report.figure("messages accepted by the simulator", messages.values().sum::<u64>());
    report.figure("duplicate messages (a person got one twice)", duplicate_messages);
    report.figure("ambiguous sends logged and counted (AmbiguousSends)", ambiguous_counted);
    report.figure("claims taken over from a stopped attempt (ReclaimedSends)", reclaimed);
    report.figure("outcomes published again after an unconfirmed publication (UnconfirmedOutcomes)", unconfirmed);
    report.figure("token refusals (190) answered", token_refusals);
    report.figure("130429 not injected (the senders' own pace)", unplanned_throttles);
    let ambiguous_publishes =
        tally.get("SQS 5xx after the work (ambiguous)") + tally.get("process killed after an SQS send");
    report.figure("ambiguous publications (SQS 5xx after the work, kills after an SQS send)", ambiguous_publishes);
    report.check(format!("0 lost (requests with no outcome: {lost})"), lost == 0);
    report.check(format!("one outcome per request, never two different ones ({conflicting})"), conflicting == 0);
    report.check(
        format!(
            "outcomes published twice ({duplicated}) ≤ unconfirmed republications + ambiguous publications ({})",
            unconfirmed + ambiguous_publishes as f64
        ),
        duplicated as f64 <= unconfirmed + ambiguous_publishes as f64,
    );
    let ambiguous_faults = report.injected.get("Graph timeout after accepting (ambiguous)").copied().unwrap_or(0)
        + report.injected.get("Graph 5xx").copied().unwrap_or(0)
        + senders.iter().map(Function::kills).sum::<u64>();
    report.check(
        format!("duplicate messages ({duplicate_messages}) ≤ ambiguous faults: timeouts after accepting, 5xx, kills ({ambiguous_faults})"),
        duplicate_messages <= ambiguous_faults,
    );
    report.check(
        format!(
            "each duplicate message logged and counted: ≤ AmbiguousSends + ReclaimedSends ({})",
            ambiguous_counted + reclaimed
        ),
        duplicate_messages as f64 <= ambiguous_counted + reclaimed,
    );
    report.check(format!("no at_most_once request sent twice ({at_most_once_twice})"), at_most_once_twice == 0);
    report.check(
        format!("every accepted outcome has its message ({accepted_without_message} without)"),
        accepted_without_message == 0,
    );
    report.check(format!("0 authentication failures after the token expiry ({auth_failures})"), auth_failures == 0);
    report.check("the token episode happened", lock(&token_episode).is_some() && token_refusals > 0);
    report.check(format!("0 130429 beyond those injected ({unplanned_throttles})"), unplanned_throttles == 0);
    let leaks = super::leaks(&logs, &["fault-run-token", "fault-run-app-secret", "\"1651", " 1651", "=1651", "+1651"]);
    report.check(format!("no secret or phone number in the logs ({leaks:?})"), leaks.is_empty());
    report
}
