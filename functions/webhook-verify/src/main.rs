//! Lambda entry point: wires the cached Secrets Manager source to the handler.

use lambda_http::{Error, Request, service_fn};
use wa_infra::config::{VerifyConfig, process_env};
use wa_infra::{aws, secrets, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = VerifyConfig::from_env(&process_env())?;
    let sdk = aws::load().await;
    let secrets = secrets::apps(&sdk, config.secret_id, &config.apps, config.secret_ttl_seconds);
    let secrets = &secrets;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(webhook_verify::handle(secrets, &request).await)
    }))
    .await
}
