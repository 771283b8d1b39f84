//! The media fetcher streaming a large document: its release binary under the Lambda Runtime API
//! emulator, against the Cloud API simulator (the file) and the loopback stand-in for AWS (S3
//! multipart upload, DynamoDB, SQS), as Lambda would run it. Measures the peak RSS (VmHWM) of the
//! process while it streams the file and the throughput (file size / time from the invocation to
//! its answer), and checks that every byte reached S3 in one completed upload.
//!
//! `wa-bench media <binary> [megabytes]` (default 100), `WA_BENCH_RUNS` times (default 3); prints one
//! JSON line with the medians.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::coldstart::{Times, emulator, median, peak_rss_kb, sqs_event};

const PHONE: &str = "106540352242922";

pub fn main(args: &[String]) {
    let binary = args.first().expect("usage: wa-bench media <binary> [megabytes]").clone();
    let megabytes: usize = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(100);
    let size = megabytes * 1024 * 1024;
    let runs: usize = std::env::var("WA_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let aws = wa_bench::fake_aws::start();
    let (graph, file) = simulator_with_file(size);
    let (mut seconds, mut rss) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let before = wa_bench::fake_aws::s3_bytes();
        let event_id = format!("wamid.bench-media-{run}");
        let message = json!({"from": "16505551234", "id": event_id, "timestamp": "1795000000", "type": "document",
            "document": {"filename": "report.pdf", "mime_type": "application/pdf", "sha256": file.sha256, "id": file.id}});
        let event = json!({"version": 1, "event_id": event_id, "kind": "message", "field": "messages",
            "waba_id": "102290129340398", "phone_number_id": PHONE, "user_id": "16505551234", "timestamp": 1_795_000_000,
            "received_at": 1_795_000_000_000_u64, "payload": message});
        let times = Arc::new(Mutex::new(Times::default()));
        let api = emulator(sqs_event(&event, None), times.clone());
        let mut child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_ENDPOINT_URL", &aws)
            .env("WHATSAPP_SECRET_ID", "bench")
            .env("PAYLOAD_BUCKET", "bench")
            .env("STATE_TABLE", "bench")
            .env("EVENTS_QUEUE_URL", format!("{aws}/000000000000/events"))
            .env("GRAPH_API_BASE", &graph)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(120);
        let (poll, answer) = loop {
            {
                let t = times.lock().unwrap();
                if let Some(error) = &t.error {
                    let _ = child.kill();
                    panic!("media-fetcher reported an error: {error}");
                }
                if let (Some(poll), Some(answer)) = (t.poll, t.answer) {
                    break (poll, answer);
                }
            }
            assert!(Instant::now() < deadline, "media-fetcher: no answer within 120 s");
            std::thread::sleep(Duration::from_millis(1));
        };
        rss.push(peak_rss_kb(pid) as f64 / 1024.0);
        let body = times.lock().unwrap().answer_body.clone().unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        let after = wa_bench::fake_aws::s3_bytes();
        assert!(body.contains("\"batchItemFailures\":[]"), "media-fetcher failed the record: {body}");
        assert_eq!(after.0 - before.0, size as u64, "every byte reached S3");
        assert_eq!(after.1 - before.1, 1, "one completed upload");
        seconds.push(answer.duration_since(poll).as_secs_f64());
    }
    let seconds = median(seconds);
    println!(
        "{}",
        json!({"label": "media-fetcher", "file_mb": megabytes, "runs": runs, "seconds": seconds,
               "mb_per_s": megabytes as f64 / seconds, "peak_rss_mb": median(rss)})
    );
}

struct File {
    id: String,
    sha256: String,
}

/// The simulator on a thread of its own with one user file of `size` bytes.
fn simulator_with_file(size: usize) -> (String, File) {
    let (sent, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let config =
                wa_simulator::SimConfig { access_token: "bench-token".into(), ..wa_simulator::SimConfig::default() };
            let sim = wa_simulator::Simulator::start("127.0.0.1:0", config).await.unwrap();
            let bytes = wa_simulator::media::file_bytes(size, 100);
            let (id, sha256, _) = sim.put_media(PHONE, bytes, "application/pdf");
            sent.send((sim.base_url(), File { id, sha256 })).unwrap();
            std::future::pending::<()>().await;
        });
    });
    started.recv().unwrap()
}
