//! Lambda entry point: wires the cached Secrets Manager source to the handler.

use std::time::Duration;

use lambda_http::{Error, Request, service_fn};
use wa_infra::config::{VerifyConfig, process_env};
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = VerifyConfig::from_env(&process_env())?;
    let sdk = aws::load().await;
    let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(&sdk), config.secret_id);
    let policy = CachePolicy { ttl: Duration::from_secs(config.secret_ttl_seconds), ..CachePolicy::default() };
    let secrets = CachedSecrets::new(fetch, policy);
    let secrets = &secrets;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(webhook_verify::handle(secrets, &request).await)
    }))
    .await
}
