//! The ingest CPU path next to its floor, measured in the same run with criterion (results in
//! `target/criterion`, or the directory given).
//!
//! - floor: HMAC-SHA256 over the body + parsing the API Gateway envelope + parsing the body as JSON;
//! - ingest: parsing the envelope + `webhook_ingest::process` (signature check, parse, split into
//!   events, serialize, build the SQS `SendMessageBatch` entries) with in-memory ports.
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures_util::FutureExt;
use hmac::{KeyInit, Mac};
use std::hint::black_box;
use wa_bench::{APP_SECRET, BatchBuilder, MAX_EVENT_AGE_S, NoBlobs, apigw_event, secrets, spec_examples, webhook};
use webhook_ingest::{Ingest, Outcome};

fn floor(event: &str) -> usize {
    let request = lambda_http::request::from_str(event).unwrap();
    let body: &[u8] = request.body().as_ref();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    tag.len() + usize::from(value.is_object())
}

fn ingest(deps: &Ingest<BatchBuilder, NoBlobs, wa_infra_local::LocalSecrets>, event: &str) -> usize {
    let request = lambda_http::request::from_str(event).unwrap();
    match webhook_ingest::process(deps, &request, 1_795_000_000_000).now_or_never().unwrap() {
        Outcome::Enqueued { events, .. } => events,
        other => panic!("not enqueued: {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    wa_infra::telemetry::silence_metrics();
    let deps = Ingest { queue: BatchBuilder, blobs: NoBlobs, secrets: secrets(), max_event_age_s: MAX_EVENT_AGE_S };
    for n in [1usize, 10, 100] {
        let event = apigw_event(&webhook(n));
        assert_eq!(ingest(&deps, &event), n);
        let mut group = c.benchmark_group(format!("webhook_{n}_messages"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function("floor", |b| b.iter(|| floor(black_box(&event))));
        group.bench_function("ingest", |b| b.iter(|| ingest(&deps, black_box(&event))));
        group.finish();
    }
    let events: Vec<String> = spec_examples().iter().map(|body| apigw_event(body)).collect();
    let mut group = c.benchmark_group("spec_examples_16");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("floor", |b| b.iter(|| events.iter().map(|e| floor(black_box(e))).sum::<usize>()));
    group.bench_function("ingest", |b| b.iter(|| events.iter().map(|e| ingest(&deps, black_box(e))).sum::<usize>()));
    group.finish();
}

pub fn main(args: &[String]) {
    let output = args.first().map_or("target/criterion", String::as_str);
    let mut criterion = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1))
        .output_directory(Path::new(output));
    benches(&mut criterion);
    criterion.final_summary();
}
