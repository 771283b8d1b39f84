//! Shared AWS SDK configuration: built once per process, with timeouts well below the functions'.

use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};

/// Per-attempt and per-operation timeouts for every AWS call. The webhook functions answer within
/// a few seconds even when a dependency hangs, far below API Gateway's 30 s limit.
#[must_use]
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// The configuration loader every function uses: our timeouts, standard retries (3 attempts),
/// and no stalled-stream protection — the per-attempt timeout above is stricter than its 5 s
/// grace period, and its body wrappers cost CPU on every call.
#[must_use]
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
}

/// Loads the configuration from the standard AWS environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for a local emulator) with [`loader`]'s settings.
pub async fn load() -> SdkConfig {
    loader().load().await
}

/// An S3 client; path-style addressing when a custom endpoint (an emulator) is configured.
#[must_use]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Renders an SDK error with its full chain of causes, for logs (never includes request bodies).
pub fn describe<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
