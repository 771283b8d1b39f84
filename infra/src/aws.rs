//! Shared AWS SDK configuration: built once per process, with timeouts well below the functions'.

use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};

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
/// no stalled-stream protection — the per-attempt timeout above is stricter than its 5 s grace
/// period, and its body wrappers cost CPU on every call — and the compiled-in TLS roots
/// ([`crate::tls`]) unless the operator names a certificate store.
#[must_use]
pub fn loader() -> ConfigLoader {
    loader_with(|name| std::env::var_os(name))
}

/// [`loader`] with the environment read through `var` (the tests and benchmarks pass `|_| None`:
/// Lambda's environment, where no certificate store is named, whatever the developer's shell sets).
#[must_use]
pub fn loader_with(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    if crate::tls::operator_store(var) {
        return loader;
    }
    // The SDK's default HTTPS client (hyper, rustls with aws-lc), trusting the compiled-in roots.
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(crate::tls::roots_pem());
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => loader.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https(),
        ),
        Err(error) => {
            tracing::warn!(error = %describe(&error), "compiled-in TLS roots unavailable; the SDK reads the system's store");
            loader
        }
    }
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
