//! Lambda entry point: Secrets Manager invokes it with each rotation step.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use secret_rotation::{OsRandom, Rotation};
use wa_core::rotation::RotationEvent;
use wa_infra::config::{GRAPH_API_BASE, GRAPH_API_VERSION};
use wa_infra::graph::{DEFAULT_BASE, DEFAULT_VERSION, GraphClient};
use wa_infra::vault::SecretsManagerVault;
use wa_infra::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let base = var(GRAPH_API_BASE).unwrap_or_else(|| DEFAULT_BASE.into());
    let version = var(GRAPH_API_VERSION).unwrap_or_else(|| DEFAULT_VERSION.into());
    let sdk = aws::load().await;
    let rotation = Rotation {
        vault: SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(&sdk)),
        meta: GraphClient::new(&base, &version, Duration::from_secs(20))?,
        random: OsRandom,
        fallback_webhook_url: var("WEBHOOK_URL"),
    };
    let rotation = &rotation;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| async move {
        rotation.handle(&event.payload, telemetry::now_millis() / 1000).await.map_err(|e| Error::from(e.to_string()))
    }))
    .await
}
