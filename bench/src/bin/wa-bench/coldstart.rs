//! Cold start and memory of a Lambda function binary, against a small Lambda Runtime API emulator
//! on loopback: exec → first poll of `/invocation/next`, exec → first invocation answered, peak
//! RSS (VmHWM) after the answer, and the binary's size. The first invocation does each function's
//! real work against a loopback stand-in for AWS (`wa_bench::fake_aws`) and the Cloud API simulator,
//! and its answer is checked (see [`first_invocation`]): ingest a signed one-message webhook (secret
//! read, SQS batch), verify Meta's verification GET, the sender a template send (idempotency claim,
//! rate slot, Graph call, outcome published), the event processor an inbound message (dedupe,
//! conversation state, event published), secret rotation its testSecret step (pending version read,
//! token checked with debug_token), the watchdog its daily run (secret read, debug_token).
//!
//! `wa-bench coldstart <label> <command> [args...]`, repeated `WA_BENCH_RUNS` times (default 10); prints
//! one JSON line with the medians.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Default)]
pub(crate) struct Times {
    pub(crate) poll: Option<Instant>,
    pub(crate) answer: Option<Instant>,
    pub(crate) answer_body: Option<String>,
    pub(crate) error: Option<String>,
    served: bool,
}

pub(crate) fn emulator(event: String, times: Arc<Mutex<Times>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().fallback(
                move |method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Bytes| {
                    let times = times.clone();
                    let event = event.clone();
                    async move {
                        let path = uri.path().to_owned();
                        if method == axum::http::Method::GET && path.ends_with("/invocation/next") {
                            let first = {
                                let mut t = times.lock().unwrap();
                                t.poll.get_or_insert_with(Instant::now);
                                !std::mem::replace(&mut t.served, true)
                            };
                            if !first {
                                // One invocation per process: later polls wait until the process is killed.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let deadline =
                                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                                    + 30_000;
                            return axum::response::Response::builder()
                                .status(200)
                                .header("lambda-runtime-aws-request-id", "bench-request-1")
                                .header("lambda-runtime-deadline-ms", deadline.to_string())
                                .header(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:000000000000:function:bench",
                                )
                                .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                                .header("content-type", "application/json")
                                .body(axum::body::Body::from(event))
                                .unwrap();
                        }
                        let mut t = times.lock().unwrap();
                        if path.ends_with("/response") {
                            t.answer.get_or_insert_with(Instant::now);
                            t.answer_body.get_or_insert_with(|| String::from_utf8_lossy(&body).into_owned());
                        } else {
                            t.error = Some(format!("{path}: {}", String::from_utf8_lossy(&body)));
                        }
                        axum::response::Response::builder().status(202).body(axum::body::Body::empty()).unwrap()
                    }
                },
            );
            axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
        });
    });
    address
}

/// The Cloud API simulator on a thread of its own (the Graph API of the sender, rotation and
/// watchdog), accepting the stand-in secret's app and token; returns its base URL.
fn simulator() -> String {
    let (url, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let config = wa_simulator::SimConfig {
                access_token: "bench-token".into(),
                access_token_expires_at: now + 60 * 86_400,
                app_id: "1".into(),
                app_secret: wa_bench::APP_SECRET.into(),
                ..wa_simulator::SimConfig::default()
            };
            let sim = wa_simulator::Simulator::start("127.0.0.1:0", config).await.unwrap();
            url.send(sim.base_url()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    started.recv().unwrap()
}

/// An SQS event of one record.
pub(crate) fn sqs_event(body: &Value, group: Option<&str>) -> String {
    let mut attributes = json!({"ApproximateReceiveCount": "1", "SentTimestamp": "1795000000000"});
    if let Some(group) = group {
        attributes["MessageGroupId"] = group.into();
    }
    json!({"Records": [{"messageId": "bench-1", "receiptHandle": "bench-receipt", "body": body.to_string(),
        "attributes": attributes,
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench"}]})
    .to_string()
}

/// The first event `label`'s function gets, and the check that its answer shows the work done.
fn first_invocation(label: &str) -> (String, fn(&str) -> bool) {
    let status_200 = |body: &str| serde_json::from_str::<Value>(body).is_ok_and(|v| v["statusCode"] == 200);
    let no_failures = |body: &str| {
        serde_json::from_str::<Value>(body).is_ok_and(|v| v["batchItemFailures"].as_array().is_some_and(Vec::is_empty))
    };
    match label {
        l if l.contains("verify") => (wa_bench::apigw_verify_event("bench-verify"), status_200),
        "sender" => {
            let request = json!({"phone_number_id": "106540352242922", "to": "16505551234", "idempotency_key": "bench-1",
                "message": {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}});
            (sqs_event(&request, Some("106540352242922#16505551234")), no_failures)
        }
        "event-processor" => {
            (sqs_event(&wa_bench::inbound_event(), None), no_failures)
        }
        "secret-rotation" => (
            json!({"Step": "testSecret", "SecretId": "bench", "ClientRequestToken": wa_bench::fake_aws::PENDING_VERSION})
                .to_string(),
            |body: &str| body.trim() == "null",
        ),
        "token-watchdog" => (
            json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "000000000000", "time": "2026-11-25T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})
            .to_string(),
            |body: &str| serde_json::from_str::<Value>(body).is_ok_and(|v| v["secrets"] == 1 && v["failed"] == 0),
        ),
        // webhook-ingest and the Node.js function: a signed one-message webhook.
        _ => (wa_bench::apigw_event(&wa_bench::webhook(1)), status_200),
    }
}

pub(crate) fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn main(args: &[String]) {
    let (label, command) = (args[0].clone(), args[1..].to_vec());
    let runs: usize = std::env::var("WA_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let aws = wa_bench::fake_aws::start();
    let graph = simulator();
    let (event, done) = first_invocation(&label);
    let (mut polls, mut answers, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let times = Arc::new(Mutex::new(Times::default()));
        let api = emulator(event.clone(), times.clone());
        let started = Instant::now();
        // Lambda's environment, not this shell's: the variables the runtime sets (and ours), nothing else
        // (a developer's SSL_CERT_FILE, say, would change what the functions read at start-up).
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_ENDPOINT_URL", &aws)
            .env("WHATSAPP_SECRET_ID", "bench")
            .env("WA_APP_SECRET", wa_bench::APP_SECRET)
            .env("INBOUND_QUEUE_URL", format!("{aws}/000000000000/inbound"))
            .env("PAYLOAD_BUCKET", "bench")
            .env("STATE_TABLE", "bench")
            .env("EVENTS_QUEUE_URL", format!("{aws}/000000000000/events"))
            .env("OUTBOUND_QUEUE_URL", format!("{aws}/000000000000/outbound.fifo"))
            .env("SECRET_IDS", "bench")
            .env("GRAPH_API_BASE", &graph)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", command[0]));
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (poll, answer) = loop {
            {
                let t = times.lock().unwrap();
                if let Some(error) = &t.error {
                    let _ = child.kill();
                    panic!("{label}: the function reported an error: {error}");
                }
                if let (Some(poll), Some(answer)) = (t.poll, t.answer) {
                    break (poll, answer);
                }
            }
            assert!(Instant::now() < deadline, "{label}: no answer within 20 s");
            std::thread::sleep(Duration::from_micros(200));
        };
        rss.push(peak_rss_kb(pid) as f64 / 1024.0);
        let body = times.lock().unwrap().answer_body.clone().unwrap_or_default();
        if !done(&body) {
            let _ = child.kill();
            panic!("{label}: the first invocation did not do its work; it answered {body}");
        }
        let _ = child.kill();
        let _ = child.wait();
        polls.push(poll.duration_since(started).as_secs_f64() * 1000.0);
        answers.push(answer.duration_since(started).as_secs_f64() * 1000.0);
    }
    let size = std::fs::metadata(&command[0]).map(|m| m.len()).ok().filter(|_| command.len() == 1);
    println!(
        "{}",
        json!({"label": label, "runs": runs, "first_poll_ms": median(polls), "first_answer_ms": median(answers),
               "peak_rss_mb": median(rss), "binary_mb": size.map(|s| s as f64 / 1_048_576.0)})
    );
}
