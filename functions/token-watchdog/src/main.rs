//! Lambda entry point: a daily schedule invokes it.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use token_watchdog::Watchdog;
use wa_infra::config::{GRAPH_API_BASE, GRAPH_API_VERSION, SECRET_ID};
use wa_infra::graph::{DEFAULT_BASE, DEFAULT_VERSION, GraphClient};
use wa_infra::vault::SecretsManagerVault;
use wa_infra::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let base = var(GRAPH_API_BASE).unwrap_or_else(|| DEFAULT_BASE.into());
    let version = var(GRAPH_API_VERSION).unwrap_or_else(|| DEFAULT_VERSION.into());
    // SECRET_IDS: every app secret (comma-separated); SECRET_ID alone otherwise.
    let secret_ids: Vec<String> = var("SECRET_IDS")
        .or_else(|| var(SECRET_ID))
        .ok_or("set SECRET_IDS (or SECRET_ID): the app secrets to watch")?
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let sdk = aws::load().await;
    let watchdog = Watchdog {
        vault: SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(&sdk)),
        meta: GraphClient::new(&base, &version, Duration::from_secs(20))?,
        secret_ids,
    };
    let watchdog = &watchdog;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let reports = watchdog.run(telemetry::now_millis() / 1000).await;
        let failed = reports.iter().filter(|r| r.failure.is_some()).count();
        Ok::<_, std::convert::Infallible>(serde_json::json!({"secrets": reports.len(), "failed": failed}))
    }))
    .await
}
