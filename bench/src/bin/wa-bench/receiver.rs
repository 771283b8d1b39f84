//! Two reference receivers for the webhook throughput benchmark, on the same HTTP stack as
//! `wa dev` (its router on `wa_cli::serve`: a current-thread runtime per core):
//! - `empty`: reads the body and answers `200 ok` — no signature check, no work: the loopback
//!   ceiling, which no receiver doing the webhook's work can pass on the same machine;
//! - `ingest`: `wa dev`'s webhook router with the real ingest handler (signature check, parse,
//!   split, serialize, the SQS `SendMessageBatch` entries built) but nothing stored — the work
//!   the Express and pywa receivers do, which keep nothing either.
//!
//! Usage: `wa-bench receiver empty|ingest <port> [app secret]`.

use std::sync::Arc;

use wa_bench::{BatchBuilder, NoBlobs};
use wa_core::secrets::AppSecrets;
use wa_infra_local::LocalSecrets;
use webhook_ingest::Ingest;

pub fn main(args: &[String]) {
    let (Some(mode), Some(port)) = (args.first(), args.get(1).and_then(|p| p.parse::<u16>().ok())) else {
        panic!("usage: wa-bench receiver empty|ingest <port> [app secret]");
    };
    let secret = args.get(2).cloned().unwrap_or_else(|| wa_bench::APP_SECRET.to_owned());
    let app = match mode.as_str() {
        "empty" => axum::Router::new().fallback(|body: axum::body::Bytes| async move {
            std::hint::black_box(body.len());
            "ok"
        }),
        "ingest" => {
            let secrets = LocalSecrets(Arc::new(AppSecrets {
                app_id: "1".into(),
                app_secret: secret,
                verify_token: "bench-verify".into(),
                access_token: "bench-token".into(),
                phone_number_tokens: std::collections::BTreeMap::new(),
            }));
            let ingest = Arc::new(Ingest {
                queue: BatchBuilder,
                blobs: NoBlobs,
                secrets: secrets.clone(),
                max_event_age_s: wa_bench::MAX_EVENT_AGE_S,
            });
            // As in `wa dev`: no EMF metric lines (there is no CloudWatch to read them).
            wa_infra::telemetry::silence_metrics();
            wa_cli::dev::webhook_router(ingest, Arc::new(secrets))
        }
        other => panic!("unknown mode {other}: empty or ingest"),
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let _server = wa_cli::serve::HttpServer::start(listener, app, wa_cli::serve::threads_per_machine()).unwrap();
    // Served until killed.
    loop {
        std::thread::park();
    }
}
