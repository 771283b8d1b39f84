//! Configuration from environment variables, validated once at start-up with errors that name the
//! variable and say what is expected.

use thiserror::Error;

use crate::sqs::DEFAULT_MAX_MESSAGE_BYTES;

/// A configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("environment variable {name} is not set: {hint}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What it should hold.
        hint: &'static str,
    },
    /// A variable has a value we cannot use.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A required, non-empty variable.
    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        (self.0)(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing { name, hint })
    }

    /// An optional number with a default and an inclusive range.
    pub fn number(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError::Invalid { name, reason: format!("expected a whole number from {min} to {max}") }),
            },
        }
    }
}

/// The process environment.
#[must_use]
pub fn process_env() -> Env<fn(&str) -> Option<String>> {
    Env(|name| std::env::var(name).ok())
}

/// `WHATSAPP_SECRET_ID`: the Secrets Manager secret (name or ARN) with the app credentials.
pub const SECRET_ID: &str = "WHATSAPP_SECRET_ID";
/// `INBOUND_QUEUE_URL`: where inbound events go.
pub const INBOUND_QUEUE_URL: &str = "INBOUND_QUEUE_URL";
/// `PAYLOAD_BUCKET`: where parked bodies and oversized events go.
pub const PAYLOAD_BUCKET: &str = "PAYLOAD_BUCKET";
/// `INBOUND_MAX_MESSAGE_BYTES`: the inbound queue's `MaximumMessageSize`.
pub const INBOUND_MAX_MESSAGE_BYTES: &str = "INBOUND_MAX_MESSAGE_BYTES";
/// `SECRET_CACHE_TTL_SECONDS`: how long secrets are cached.
pub const SECRET_CACHE_TTL_SECONDS: &str = "SECRET_CACHE_TTL_SECONDS";

/// What webhook-verify needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// See [`SECRET_ID`].
    pub secret_id: String,
    /// See [`SECRET_CACHE_TTL_SECONDS`].
    pub secret_ttl_seconds: u64,
}

impl VerifyConfig {
    /// Reads and validates the variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            secret_id: env.required(
                SECRET_ID,
                "the Secrets Manager secret holding app_id, app_secret, verify_token, access_token",
            )?,
            secret_ttl_seconds: env.number(SECRET_CACHE_TTL_SECONDS, 300, 1, 300)?,
        })
    }
}

/// What webhook-ingest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// See [`SECRET_ID`].
    pub secret_id: String,
    /// See [`SECRET_CACHE_TTL_SECONDS`].
    pub secret_ttl_seconds: u64,
    /// See [`INBOUND_QUEUE_URL`].
    pub inbound_queue_url: String,
    /// See [`PAYLOAD_BUCKET`].
    pub payload_bucket: String,
    /// See [`INBOUND_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
}

impl IngestConfig {
    /// Reads and validates the variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let verify = VerifyConfig::from_env(env)?;
        let max = env.number(INBOUND_MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES as u64, 1024, 1_048_576)?;
        Ok(Self {
            secret_id: verify.secret_id,
            secret_ttl_seconds: verify.secret_ttl_seconds,
            inbound_queue_url: env.required(INBOUND_QUEUE_URL, "the URL of the inbound SQS queue")?,
            payload_bucket: env.required(PAYLOAD_BUCKET, "the S3 bucket for parked bodies and oversized events")?,
            max_message_bytes: usize::try_from(max).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn errors_name_the_variable() {
        let err = IngestConfig::from_env(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("WHATSAPP_SECRET_ID"), "{err}");
        let err = IngestConfig::from_env(&env(&[(SECRET_ID, "s")])).unwrap_err();
        assert!(err.to_string().contains("INBOUND_QUEUE_URL"), "{err}");
        let err = IngestConfig::from_env(&env(&[
            (SECRET_ID, "s"),
            (INBOUND_QUEUE_URL, "q"),
            (PAYLOAD_BUCKET, "b"),
            (INBOUND_MAX_MESSAGE_BYTES, "2000000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("INBOUND_MAX_MESSAGE_BYTES"), "{err}");
        let ok =
            IngestConfig::from_env(&env(&[(SECRET_ID, "s"), (INBOUND_QUEUE_URL, "q"), (PAYLOAD_BUCKET, "b")])).unwrap();
        assert_eq!(ok.max_message_bytes, 262_144);
        assert_eq!(ok.secret_ttl_seconds, 300);
    }
}
