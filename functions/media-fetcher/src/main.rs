//! Lambda entry point: wires the Graph media client, S3, SQS, DynamoDB and the cached secret.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use media_fetcher::{FetchConfig, MediaFetcher};
use wa_infra::config::{MediaEnv, process_env};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::Events;
use wa_infra::media::GraphMedia;
use wa_infra::s3::S3Blobs;
use wa_infra::sqs::Sqs;
use wa_infra::{aws, secrets, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let env = MediaEnv::from_env(&process_env())?;
    let sdk = aws::load().await;
    let fetcher = MediaFetcher {
        graph: GraphMedia::new(&env.graph_api_base, &env.graph_api_version, Duration::from_secs(30))?,
        store: S3Blobs::new(aws::s3_client(&sdk), env.payload_bucket),
        events: Events::new(&sdk, &Sqs::new(&sdk)?, &env.events)?,
        secrets: secrets::apps(&sdk, env.verify.secret_id, &env.verify.apps, env.verify.secret_ttl_seconds),
        dedupe: StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), env.state_table),
        config: FetchConfig { max_receives: env.max_receives, ..FetchConfig::default() },
    };
    let fetcher = &fetcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<SqsBatchResponse, std::convert::Infallible>(fetcher.handle(&event.payload, deadline).await)
    }))
    .await
}
