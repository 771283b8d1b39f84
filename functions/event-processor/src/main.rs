//! Lambda entry point: wires DynamoDB, SQS and S3 to the handler.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use event_processor::Processor;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use wa_core::conversation::OptOutKeywords;
use wa_infra::config::{Env, process_env};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::Events;
use wa_infra::s3::S3Blobs;
use wa_infra::sqs::{DEFAULT_MAX_MESSAGE_BYTES, Sqs, SqsQueue};
use wa_infra::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let env: Env<fn(&str) -> Option<String>> = process_env();
    let table = env.required("STATE_TABLE", "the DynamoDB state table")?;
    let events = env.events()?;
    let bucket = env.required("PAYLOAD_BUCKET", "the S3 bucket of claim-checked events")?;
    let keywords = match (std::env::var("OPT_OUT_KEYWORDS"), std::env::var("OPT_IN_KEYWORDS")) {
        (Ok(stop), Ok(start)) => OptOutKeywords::from_lists(&stop, &start),
        _ => OptOutKeywords::default(),
    };
    let media = std::env::var(wa_infra::config::MEDIA_QUEUE_URL).ok().filter(|url| !url.trim().is_empty());
    let sdk = aws::load().await;
    let sqs = Sqs::new(&sdk)?;
    let state = StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let processor = Processor {
        dedupe: state.clone(),
        state,
        events: Events::new(&sdk, &sqs, &events)?,
        media: media.map(|url| Events::Queue(SqsQueue::new(&sqs, url, DEFAULT_MAX_MESSAGE_BYTES))),
        blobs: S3Blobs::new(aws::s3_client(&sdk), bucket),
        keywords,
        portfolios: env.portfolios()?,
        numbers_seen: std::sync::Mutex::default(),
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<SqsBatchResponse, std::convert::Infallible>(processor.handle(&event.payload, deadline).await)
    }))
    .await
}
