//! Traits for the outside world. `infra` implements them over AWS; tests and the local stack use
//! the same implementations against moto server or embedded stores.

use std::future::Future;
use std::sync::Arc;

use thiserror::Error;

use crate::secrets::{AppSecrets, SecretStage};

/// A queue failure. `Display` never includes message bodies.
#[derive(Debug, Error)]
pub enum QueueError {
    /// Some entries were still refused after all retries.
    #[error("{failed} of {total} messages not accepted by the queue after {attempts} attempts: {reason}")]
    Rejected {
        /// How many were refused.
        failed: usize,
        /// How many were offered.
        total: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last error code(s).
        reason: String,
    },
    /// The queue could not be reached or answered with an error.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// A message is larger than the queue accepts.
    #[error("message of {size} bytes exceeds the queue limit of {limit} bytes")]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Publishes messages durably: `Ok` only when the queue accepted every one of them.
pub trait EventQueue: Send + Sync {
    /// The largest message body the queue accepts, in bytes.
    fn max_message_bytes(&self) -> usize;

    /// Publishes all bodies (in batches as the queue allows); `Ok` means every one was accepted.
    fn publish(&self, bodies: &[String]) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A blob store failure.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The store could not be reached or refused the request.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    /// No object under that key.
    #[error("no object {0}")]
    NotFound(String),
}

/// Durable storage for parked bodies and claim-checked events.
pub trait BlobStore: Send + Sync {
    /// The bucket (or equivalent) name, for references.
    fn bucket(&self) -> &str;

    /// Stores `body` under `key` (overwriting is harmless: keys are content-addressed).
    fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Reads the object under `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, BlobError>> + Send;
}

/// A secret store failure. Never includes a secret value.
#[derive(Debug, Clone, Error)]
pub enum SecretError {
    /// The store could not be reached and no earlier value is known.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The secret exists but its JSON is not usable.
    #[error("secret is malformed: {0}")]
    Malformed(String),
}

/// The app credentials by version stage, cached by implementations.
pub trait SecretSource: Send + Sync {
    /// The value at `stage`; `Ok(None)` when no version carries that stage.
    fn get(&self, stage: SecretStage) -> impl Future<Output = Result<Option<Arc<AppSecrets>>, SecretError>> + Send;

    /// Like `get`, but bypasses the cache when it was not refreshed recently (rate-limited), for
    /// when a signature or token suggests the cached value is stale.
    fn refresh(&self, stage: SecretStage) -> impl Future<Output = Result<Option<Arc<AppSecrets>>, SecretError>> + Send;
}
