//! Lambda entry point: wires the Graph client, DynamoDB, SQS and the cached secret to the handler.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sender::{Sender, SenderConfig};
use wa_infra::config::{SenderEnv, process_env};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::Events;
use wa_infra::graph::GraphClient;
use wa_infra::s3::S3Objects;
use wa_infra::sqs::{DEFAULT_MAX_MESSAGE_BYTES, Sqs, SqsQueue};
use wa_infra::{aws, secrets, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let env = SenderEnv::from_env(&process_env())?;
    let sdk = aws::load().await;
    let sqs = Sqs::new(&sdk)?;
    let table = StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), env.state_table);
    let sender = Sender {
        graph: GraphClient::new(
            &env.graph_api_base,
            &env.graph_api_version,
            Duration::from_millis(env.graph_timeout_ms),
        )?,
        idempotency: table.clone(),
        throttle: table.clone(),
        conversations: table,
        events: Events::new(&sdk, &sqs, &env.events)?,
        redelivery: Events::Queue(SqsQueue::new(&sqs, env.outbound_queue_url, DEFAULT_MAX_MESSAGE_BYTES)),
        secrets: secrets::apps(&sdk, env.secret_id, &env.apps, env.secret_ttl_seconds),
        objects: S3Objects::new(aws::s3_client(&sdk)),
        config: SenderConfig {
            default_rate: env.messages_per_second,
            rates: env.rates,
            refuse_unknown_templates: env.refuse_unknown_templates,
            messaging_limit: env.messaging_limit,
            portfolios: env.portfolios,
            // The Graph timeout, then 2 s to record, publish and mark the outcome.
            deadline_reserve: Duration::from_millis(env.graph_timeout_ms + 2_000),
            ..SenderConfig::default()
        },
        lead: sender::SlotLead::default(),
    };
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<SqsBatchResponse, std::convert::Infallible>(sender.handle(&event.payload, deadline).await)
    }))
    .await
}
