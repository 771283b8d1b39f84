//! Lambda entry point: wires SQS, S3 and the cached Secrets Manager source to the handler.

use std::time::Duration;

use lambda_http::{Error, Request, service_fn};
use wa_infra::config::{IngestConfig, process_env};
use wa_infra::s3::S3Blobs;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::sqs::SqsQueue;
use wa_infra::{aws, telemetry};
use webhook_ingest::Ingest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = IngestConfig::from_env(&process_env())?;
    let sdk = aws::load().await;
    let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(&sdk), config.secret_id);
    let policy = CachePolicy { ttl: Duration::from_secs(config.secret_ttl_seconds), ..CachePolicy::default() };
    let deps = Ingest {
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), config.inbound_queue_url, config.max_message_bytes),
        blobs: S3Blobs::new(aws::s3_client(&sdk), config.payload_bucket),
        secrets: CachedSecrets::new(fetch, policy),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(webhook_ingest::handle(deps, &request).await)
    }))
    .await
}
