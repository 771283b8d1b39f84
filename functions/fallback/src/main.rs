//! Lambda entry point: wires the state table, the bus, SNS and SES v2 to the handler.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use fallback::Fallback;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use wa_infra::config::{Env, EventsConfig, process_env};
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::Events;
use wa_infra::fallback::{AwsNotifier, Senders};
use wa_infra::sqs::Sqs;
use wa_infra::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let env: Env<fn(&str) -> Option<String>> = process_env();
    let table = env.required("STATE_TABLE", "the DynamoDB state table")?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let sdk = aws::load().await;
    let sqs = Sqs::new(&sdk)?;
    let handler = Fallback {
        state: StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        // Its own events (fallback_*) are none the fallback wants: no fallback queue.
        events: Events::new(&sdk, &sqs, &EventsConfig { fallback: None, ..env.events()? })?,
        notifier: AwsNotifier::new(
            &sdk,
            Senders {
                email_from: var("FALLBACK_EMAIL_FROM"),
                configuration_set: var("SES_CONFIGURATION_SET"),
                sms_sender_id: var("SMS_SENDER_ID"),
                sms_origination_number: var("SMS_ORIGINATION_NUMBER"),
            },
        ),
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<SqsBatchResponse, std::convert::Infallible>(handler.handle(&event.payload, deadline).await)
    }))
    .await
}
