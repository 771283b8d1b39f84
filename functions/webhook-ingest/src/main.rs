//! Lambda entry point: wires SQS, S3 and the cached Secrets Manager source to the handler.

use lambda_http::{Error, Request, service_fn};
use wa_infra::config::{IngestConfig, process_env};
use wa_infra::s3::S3Blobs;
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_infra::{aws, secrets, telemetry};
use webhook_ingest::Ingest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = IngestConfig::from_env(&process_env())?;
    let sdk = aws::load().await;
    let deps = Ingest {
        queue: SqsQueue::new(&Sqs::new(&sdk)?, config.inbound_queue_url, config.max_message_bytes),
        blobs: S3Blobs::new(aws::s3_client(&sdk), config.payload_bucket),
        secrets: secrets::apps(&sdk, config.secret_id, &config.apps, config.secret_ttl_seconds),
        max_event_age_s: config.max_event_age_s,
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        // Behind the HTTP API only POSTs arrive; behind a function URL, the verification GET too.
        Ok::<_, std::convert::Infallible>(webhook_ingest::serve(deps, &request).await)
    }))
    .await
}
