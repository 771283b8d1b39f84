//! Rotation under faults: the secret-rotation binary, run as Secrets Manager runs it (the four
//! steps in order, the whole rotation retried with the same version after a failure), with a
//! failure at each step in turn — the process killed at one of the step's AWS calls (before or
//! after AWS did it), or Meta refusing the step's call — while webhook-verify (Meta's verification
//! GETs, and Meta's own check when the subscription changes), webhook-ingest (signed deliveries)
//! and the sender (template sends) take traffic as processes. A watcher reads `AWSCURRENT` all
//! along and checks it against Meta (the simulator).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use wa_core::ports::MetaAdmin;
use wa_core::secrets::AppSecrets;
use wa_simulator::{Fault, FaultKind, SimConfig, Simulator, TokenInfo};

use super::lambda::{Answer, Function, Kill};
use super::proxy::{Proxy, Rates, Tally};
use super::{Report, Rng, binary, log_dir};
use crate::{create_fifo_queue, create_state_table, moto, moto_config, unique};

const APP_ID: &str = "1234567890";
const APP_SECRET: &str = "fault-run-rotation-app-secret";
const PHONE: &str = "106540352242922";
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
const DAY: u64 = 86_400;

/// The run's shape.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed of every choice.
    pub seed: u64,
    /// Rotations per (step, kind of failure): 2 kinds × 4 steps × this.
    pub rounds: usize,
}

impl Plan {
    /// Each of the four steps fails both ways, `rounds` times.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { seed, rounds: 1 }
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A version id as Secrets Manager draws them (a UUID).
fn version_id(rng: &mut Rng) -> String {
    let hex = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn apigw_get(query: &str) -> String {
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "version": "2.0", "routeKey": "GET /webhook", "rawPath": "/webhook", "rawQueryString": query,
        "queryStringParameters": params,
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "facebookplatform/1.0"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "http": {"method": "GET", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "173.252.127.1", "userAgent": "facebookplatform/1.0"}, "requestId": "req-1", "routeKey": "GET /webhook",
            "stage": "$default", "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000u64},
        "isBase64Encoded": false
    })
    .to_string()
}

fn apigw_post(body: &[u8]) -> String {
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

/// The answer's status code and body, from a Lambda HTTP answer.
fn http_answer(answer: &Answer) -> Option<(u16, String)> {
    let Answer::Ok(body) = answer else { return None };
    let value: Value = serde_json::from_str(body).ok()?;
    let status = u16::try_from(value["statusCode"].as_u64()?).ok()?;
    Some((status, value["body"].as_str().unwrap_or_default().to_owned()))
}

/// API Gateway in front of the verify function: Meta's GETs become invocations.
async fn serve_verify(verify: Function) -> String {
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let verify = verify.clone();
        async move {
            let answer =
                verify.invoke(apigw_get(uri.query().unwrap_or_default()), Kill::Never, Duration::from_secs(5)).await;
            match http_answer(&answer) {
                Some((status, body)) => {
                    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), body).into_response()
                }
                None => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the verify front");
    let url = format!("http://{}/webhook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Runs the plan; the goals: every rotation completes on retry, 0 authentication failures in the
/// traffic, `AWSCURRENT` always valid at Meta.
///
/// # Panics
/// When moto, the simulator or the function binaries cannot start.
#[allow(clippy::too_many_lines)]
pub async fn run(plan: &Plan) -> Report {
    let started = Instant::now();
    let moto = moto();
    let config = moto_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut rng = Rng::new(plan.seed);
    let first = AppSecrets::from_json(
        &json!({"app_id": APP_ID, "app_secret": APP_SECRET, "verify_token": "first-verify-token",
                "access_token": "EAAfirst"})
        .to_string(),
    )
    .expect("a secret");
    let secret_id = unique("faults-rotation");
    sm.create_secret()
        .name(&secret_id)
        .secret_string(serde_json::to_string(&first).expect("secret JSON"))
        .send()
        .await
        .expect("create the secret");
    let sim = Arc::new(
        Simulator::start(
            "127.0.0.1:0",
            SimConfig {
                access_token: first.access_token.clone(),
                access_token_expires_at: now_s() + 10 * DAY,
                app_id: APP_ID.into(),
                app_secret: APP_SECRET.into(),
                username_phone_suffix: None,
                ..SimConfig::default()
            },
        )
        .await
        .expect("start the simulator"),
    );
    let logs = log_dir("rotation");
    let tally = Tally::default();
    let function = |name: &str, env: Vec<(&str, String)>, proxy: &Proxy| {
        let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
        env.push(("WHATSAPP_SECRET_ID".into(), secret_id.clone()));
        env.push(("GRAPH_API_BASE".into(), sim.base_url()));
        env.push(("SECRET_CACHE_TTL_SECONDS".into(), "1".into()));
        env.push(("GRAPH_TIMEOUT_MS".into(), "2000".into()));
        let f = Function::new(name, binary(name), env, logs.join(format!("{name}.log")));
        proxy.attach(&f);
        f
    };
    let quiet = Rates::default();
    let rotation_proxy = Proxy::start(&moto.endpoint, &moto.endpoint, quiet, rng.next_u64(), tally.clone()).await;
    let rotation = function("secret-rotation", vec![], &rotation_proxy);
    let verify_proxy = Proxy::start(&moto.endpoint, &moto.endpoint, quiet, rng.next_u64(), tally.clone()).await;
    let verify = function("webhook-verify", vec![], &verify_proxy);
    let webhook_url = serve_verify(verify.clone()).await;
    let inbound =
        sqs.create_queue().queue_name(unique("rot-inbound")).send().await.expect("queue").queue_url.expect("url");
    let bucket = crate::create_bucket(&config).await;
    let ingest_proxy = Proxy::start(&moto.endpoint, &moto.endpoint, quiet, rng.next_u64(), tally.clone()).await;
    let ingest = function(
        "webhook-ingest",
        vec![("INBOUND_QUEUE_URL", inbound.clone()), ("PAYLOAD_BUCKET", bucket)],
        &ingest_proxy,
    );
    let table = create_state_table(&config).await;
    let outbound = create_fifo_queue(&config, 8).await;
    let events =
        sqs.create_queue().queue_name(unique("rot-events")).send().await.expect("queue").queue_url.expect("url");
    let sender_proxy = Proxy::start(&moto.endpoint, &moto.endpoint, quiet, rng.next_u64(), tally.clone()).await;
    let sender = function(
        "sender",
        vec![("STATE_TABLE", table), ("EVENTS_QUEUE_URL", events.clone()), ("OUTBOUND_QUEUE_URL", outbound.clone())],
        &sender_proxy,
    );
    let graph = wa_infra::graph::GraphClient::new(&sim.base_url(), "v25.0", Duration::from_secs(5)).expect("graph");
    graph.subscribe(&first, &webhook_url, &first.verify_token).await.expect("Meta verifies the first subscription");

    // Traffic, until the rotations are done.
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[AtomicU64; 8]> = Arc::new(Default::default());
    const VERIFY_OK: usize = 0;
    const VERIFY_REFUSED: usize = 1;
    const INGEST_OK: usize = 2;
    const INGEST_REFUSED: usize = 3;
    const SENDS: usize = 4;
    const CURRENT_CHECKS: usize = 5;
    const CURRENT_INVALID: usize = 6;
    const SEND_BATCHES: usize = 7;
    let mut traffic = Vec::new();
    let first_invalid = Arc::new(std::sync::Mutex::new(None::<String>));
    {
        // Meta's verification GETs with the verify token Meta holds now.
        let (stop, counters, sim, url) = (stop.clone(), counters.clone(), sim.clone(), webhook_url.clone());
        traffic.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let token = sim.subscriptions().first().map(|s| s.verify_token.clone()).unwrap_or_default();
                let ok = client
                    .get(format!("{url}?hub.mode=subscribe&hub.challenge=77&hub.verify_token={token}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                counters[if ok { VERIFY_OK } else { VERIFY_REFUSED }].fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        // Signed deliveries.
        let (stop, counters, ingest) = (stop.clone(), counters.clone(), ingest.clone());
        traffic.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE},
                    "messages": [{"from": "16505551234", "id": format!("wamid.rot.{n}"), "timestamp": now_s().to_string(), "type": "text", "text": {"body": "hi"}}]}}]}]});
                let answer = ingest.invoke(apigw_post(body.to_string().as_bytes()), Kill::Never, Duration::from_secs(5)).await;
                let ok = http_answer(&answer).is_some_and(|(status, _)| status == 200);
                counters[if ok { INGEST_OK } else { INGEST_REFUSED }].fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        // Template sends, fed and drained.
        let (stop, counters, sender, sqs, outbound) =
            (stop.clone(), counters.clone(), sender.clone(), sqs.clone(), outbound.clone());
        traffic.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for _ in 0..5 {
                    n += 1;
                    let request = json!({"phone_number_id": PHONE, "to": format!("1652{:07}", n * 10 + 1), "idempotency_key": format!("rot-{n}"),
                        "message": {"type": "template", "template": {"name": "rotation_run", "language": {"code": "en_US"}}}});
                    let _ = sqs
                        .send_message()
                        .queue_url(&outbound)
                        .message_body(request.to_string())
                        .message_group_id(format!("{PHONE}#{n}"))
                        .message_deduplication_id(format!("rot-{n}"))
                        .send()
                        .await;
                    counters[SENDS].fetch_add(1, Ordering::SeqCst);
                }
                if let Some(batch) = super::poll(&sqs, &outbound).await {
                    let event = serde_json::to_string(&batch.event).expect("an SQS event");
                    if let Answer::Ok(body) = sender.invoke(event, Kill::Never, Duration::from_secs(10)).await
                        && let Ok(response) = serde_json::from_str::<SqsBatchResponse>(&body)
                    {
                        super::settle(&sqs, &outbound, &batch, &response).await;
                    }
                    counters[SEND_BATCHES].fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    {
        // AWSCURRENT, read all along, is a token Meta accepts.
        let (stop, counters, sim, sm, secret_id) =
            (stop.clone(), counters.clone(), sim.clone(), sm.clone(), secret_id.clone());
        let first_invalid = first_invalid.clone();
        traffic.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let current = sm
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .version_stage("AWSCURRENT")
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|out| {
                        AppSecrets::from_json(out.secret_string().unwrap_or_default()).map_err(|e| e.to_string())
                    });
                let problem = match current {
                    Err(error) => Some(format!("unreadable: {error}")),
                    Ok(c) if c.app_secret != APP_SECRET => Some("another app secret".to_owned()),
                    Ok(c) => match sim.token(&c.access_token) {
                        None => Some("a token Meta does not know".to_owned()),
                        Some(t) if !t.is_valid => Some("a revoked token".to_owned()),
                        Some(t) if t.expires_at != 0 && t.expires_at <= now_s() => Some("an expired token".to_owned()),
                        Some(_) => None,
                    },
                };
                counters[CURRENT_CHECKS].fetch_add(1, Ordering::SeqCst);
                if let Some(problem) = problem {
                    counters[CURRENT_INVALID].fetch_add(1, Ordering::SeqCst);
                    super::lock(&first_invalid).get_or_insert(problem);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // The rotations: for each step, one whose process is killed at one of the step's AWS calls,
    // and one whose call to Meta (or, for finishSecret, to Secrets Manager) fails.
    let mut rotations = 0u64;
    let mut completed = 0u64;
    let (mut kills_planned, mut step_faults) = (0u64, 0u64);
    let mut retries = 0u64;
    let mut tokens: Vec<String> = vec![first.access_token.clone()];
    for _ in 0..plan.rounds {
        for (index, failing) in STEPS.iter().enumerate() {
            for kill in [true, false] {
                rotations += 1;
                let version = version_id(&mut rng);
                let mut injected = false;
                let mut done = false;
                for attempt in 0..5 {
                    let mut ok = true;
                    for (i, step) in STEPS.iter().enumerate() {
                        let mut plan_kill = Kill::Never;
                        if attempt == 0 && i == index && !injected {
                            injected = true;
                            if kill || *failing == "finishSecret" {
                                kills_planned += 1;
                            } else {
                                step_faults += 1;
                            }
                            if kill {
                                plan_kill = Kill::AtCall {
                                    nth: 1 + u32::try_from(rng.below(2)).unwrap_or(0),
                                    after_forward: rng.chance(0.5),
                                    op: None,
                                };
                            } else {
                                match *failing {
                                    "createSecret" => sim.inject(Fault {
                                        kind: FaultKind::Error { code: 2, http_status: 400 },
                                        count: 1,
                                        to: None,
                                        endpoint: Some("oauth".into()),
                                    }),
                                    "setSecret" => sim.inject(Fault {
                                        kind: FaultKind::Error { code: 2, http_status: 400 },
                                        count: 1,
                                        to: None,
                                        endpoint: Some("subscriptions".into()),
                                    }),
                                    "testSecret" => sim.inject(Fault {
                                        kind: FaultKind::HttpStatus { status: 503, accepted: false },
                                        count: 1,
                                        to: None,
                                        endpoint: Some("debug_token".into()),
                                    }),
                                    // The process dies before Secrets Manager moves the stage.
                                    _ => {
                                        plan_kill = Kill::AtCall {
                                            nth: 1,
                                            after_forward: false,
                                            op: Some("secretsmanager.UpdateSecretVersionStage"),
                                        }
                                    }
                                }
                            }
                        }
                        let event =
                            json!({"Step": step, "SecretId": secret_id, "ClientRequestToken": version}).to_string();
                        let answer = rotation.invoke(event, plan_kill, Duration::from_secs(20)).await;
                        if !matches!(answer, Answer::Ok(_)) {
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        done = true;
                        break;
                    }
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if done {
                    completed += 1;
                }
                // A token two rotations old is revoked at Meta: anything still using it fails.
                let current = sm
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .version_stage("AWSCURRENT")
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.secret_string().map(str::to_owned));
                if let Some(current) = current.and_then(|t| AppSecrets::from_json(&t).ok()) {
                    tokens.push(current.access_token.clone());
                    if tokens.len() > 2 {
                        let old = tokens[tokens.len() - 3].clone();
                        sim.set_token(&old, TokenInfo { is_valid: false, ..TokenInfo::whatsapp(APP_ID, 0) });
                    }
                }
                // Rotations come 60 days apart, not seconds: leave the functions' forced
                // secret refreshes (at most one per stage every 5 s) time to run again.
                tokio::time::sleep(Duration::from_millis(5500)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in traffic {
        let _ = task.await;
    }
    for f in [&rotation, &verify, &ingest, &sender] {
        f.stop();
    }
    let outcomes = crate::drain_queue(&config, &events).await;
    let auth_failed = outcomes
        .iter()
        .filter_map(|o| serde_json::from_str::<Value>(o).ok())
        .filter(|o| o["status"] != "accepted")
        .count();
    let accepted = outcomes.len() - auth_failed;
    let count = |i: usize| counters[i].load(Ordering::SeqCst);

    let mut report = Report { path: "secret rotation under traffic".into(), items: rotations, ..Report::default() };
    report.figure("kills planned (one per step, and finishSecret's second)", kills_planned);
    report.injected.insert("Meta failing a step's call (oauth, subscriptions, debug_token)".into(), step_faults);
    for (kind, n) in tally.snapshot() {
        report.injected.insert(kind, n);
    }
    report.acknowledged = rotations;
    report.delivered = completed;
    report.lost = rotations - completed;
    report.seconds = started.elapsed().as_secs_f64();
    report.figure("rotation retries (Secrets Manager's)", retries);
    report.figure("rotation processes killed", rotation.kills());
    report.figure("tokens minted", tokens.len() - 1);
    report.figure("verification GETs (ok / refused)", format!("{} / {}", count(VERIFY_OK), count(VERIFY_REFUSED)));
    report.figure("signed deliveries (200 / other)", format!("{} / {}", count(INGEST_OK), count(INGEST_REFUSED)));
    report
        .figure("send requests (outcomes accepted / other)", format!("{} ({accepted} / {auth_failed})", count(SENDS)));
    report.figure("AWSCURRENT checks (invalid)", format!("{} ({})", count(CURRENT_CHECKS), count(CURRENT_INVALID)));
    report.figure("sender batches", count(SEND_BATCHES));
    if let Some(problem) = super::lock(&first_invalid).clone() {
        report.figure("first invalid AWSCURRENT reading", problem);
    }
    report.check(format!("every rotation completed ({completed} of {rotations})"), completed == rotations);
    report.check(
        format!("0 verification refused ({})", count(VERIFY_REFUSED)),
        count(VERIFY_REFUSED) == 0 && count(VERIFY_OK) > 0,
    );
    report.check(
        format!("0 signed delivery refused ({})", count(INGEST_REFUSED)),
        count(INGEST_REFUSED) == 0 && count(INGEST_OK) > 0,
    );
    report.check(format!("0 sends failed ({auth_failed})"), auth_failed == 0 && accepted > 0);
    report.check(
        format!("AWSCURRENT always valid ({} invalid readings)", count(CURRENT_INVALID)),
        count(CURRENT_INVALID) == 0,
    );
    let leaks = super::leaks(
        &logs,
        &[APP_SECRET, "EAAfirst", "EAASIM", "first-verify-token", "\"1652", " 1652", "=1652", "+1652"],
    );
    report.check(format!("no secret or phone number in the logs ({leaks:?})"), leaks.is_empty());
    report
}
