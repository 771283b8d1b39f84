//! Secrets Manager's four rotation steps for a Meta app secret, each idempotent for a given
//! `ClientRequestToken` (the version being made):
//!
//! - `createSecret`: exchange the current access token (and each per-number token) for a new
//!   60-day token, draw a fresh verify token, store the result as AWSPENDING. A pending value
//!   already stored for the version is kept as it is.
//! - `setSecret`: point Meta's webhook subscription at the new verify token (same callback URL).
//!   Meta verifies it at once with a GET; the verify function accepts the AWSPENDING token.
//! - `testSecret`: `debug_token` on each new token: valid, this app, the WhatsApp scopes, at least
//!   50 days left (or never expiring).
//! - `finishSecret`: move AWSCURRENT to the version (AWSPREVIOUS follows automatically) and drop
//!   AWSPENDING; a repeat is a no-op.
//!
//! A step that fails leaves AWSCURRENT as it was; Secrets Manager retries the rotation.
//! The app secret cannot be rotated through Meta's API and is carried over unchanged.

use std::collections::BTreeMap;

use wa_core::ports::{AdminError, MetaAdmin, SecretVault, VaultError};
use wa_core::rotation::{RotationEvent, Step};
use wa_core::secrets::{AppSecrets, SecretStage};
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "secret-rotation";

/// Why a step failed. Never includes a secret value.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The event is not a rotation step.
    #[error("{0}")]
    BadEvent(String),
    /// The version is not being rotated.
    #[error("{0}")]
    NotRotating(String),
    /// Secrets Manager failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Meta refused or could not be reached.
    #[error("{step}: {error}")]
    Meta {
        /// The step.
        step: &'static str,
        /// What Meta said.
        error: AdminError,
    },
    /// A stored value is not usable.
    #[error("{0}")]
    Secret(String),
    /// testSecret found the new value wanting.
    #[error("testSecret: {0}")]
    Test(String),
}

/// Where a fresh verify token comes from.
pub trait TokenSource: Send + Sync {
    /// A new random verify token.
    fn verify_token(&self) -> Result<String, RotationError>;
}

/// 32 random bytes from the operating system, hex.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl TokenSource for OsRandom {
    fn verify_token(&self) -> Result<String, RotationError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| RotationError::Secret(format!("no randomness: {e}")))?;
        Ok(hex::encode(bytes))
    }
}

/// The rotation function.
pub struct Rotation<V, M, R = OsRandom> {
    /// Secrets Manager.
    pub vault: V,
    /// Meta's token and subscription endpoints.
    pub meta: M,
    /// Verify tokens.
    pub random: R,
    /// The webhook URL to subscribe when the app has no subscription yet (`WEBHOOK_URL`).
    pub fallback_webhook_url: Option<String>,
}

impl<V: SecretVault, M: MetaAdmin, R: TokenSource> Rotation<V, M, R> {
    /// Runs one step; logs and counts failures.
    pub async fn handle(&self, event: &RotationEvent, now_s: u64) -> Result<(), RotationError> {
        let result = self.step(event, now_s).await;
        match &result {
            Ok(()) => tracing::info!(step = %event.step, "rotation_step_done"),
            Err(error) => {
                tracing::error!(step = %event.step, %error, "rotation_step_failed");
                telemetry::emit(FUNCTION, None, &[("RotationFailures", 1.0)]);
            }
        }
        result
    }

    async fn step(&self, event: &RotationEvent, now_s: u64) -> Result<(), RotationError> {
        let step = Step::parse(&event.step).map_err(RotationError::BadEvent)?;
        let versions = self.vault.versions(&event.secret_id).await?;
        let Some(stages) = versions.stages_of(&event.token) else {
            // Secrets Manager labels the version AWSPENDING before it invokes the first step;
            // createSecret may make the version itself (the value comes with the label).
            if step == Step::Create {
                return self.create(event).await;
            }
            return Err(RotationError::NotRotating(format!("version {} is not a version of the secret", event.token)));
        };
        let current = stages.iter().any(|s| s == SecretStage::Current.as_aws());
        let pending = stages.iter().any(|s| s == SecretStage::Pending.as_aws());
        if current {
            // Already finished: every step is a no-op, but a finish still drops AWSPENDING.
            if step == Step::Finish && pending {
                self.vault.move_stage(&event.secret_id, SecretStage::Pending, None, Some(&event.token)).await?;
            }
            return Ok(());
        }
        if !pending {
            return Err(RotationError::NotRotating(format!(
                "version {} is not AWSPENDING: not being rotated",
                event.token
            )));
        }
        match step {
            Step::Create => self.create(event).await,
            Step::Set => self.set(event).await,
            Step::Test => self.test(event, now_s).await,
            Step::Finish => self.finish(event, versions.with_stage(SecretStage::Current)).await,
        }
    }

    async fn read(
        &self,
        secret_id: &str,
        version: Option<&str>,
        stage: SecretStage,
    ) -> Result<Option<AppSecrets>, RotationError> {
        match self.vault.value(secret_id, version, stage).await? {
            None => Ok(None),
            Some(text) => AppSecrets::from_json(&text).map(Some).map_err(RotationError::Secret),
        }
    }

    async fn pending(&self, event: &RotationEvent) -> Result<AppSecrets, RotationError> {
        self.read(&event.secret_id, Some(&event.token), SecretStage::Pending).await?.ok_or_else(|| {
            RotationError::NotRotating(format!("version {} has no pending value: run createSecret", event.token))
        })
    }

    async fn create(&self, event: &RotationEvent) -> Result<(), RotationError> {
        if self.vault.value(&event.secret_id, Some(&event.token), SecretStage::Pending).await?.is_some() {
            tracing::info!("pending value already stored; keeping it");
            return Ok(());
        }
        let current = self
            .read(&event.secret_id, None, SecretStage::Current)
            .await?
            .ok_or_else(|| RotationError::Secret("the secret has no AWSCURRENT value".into()))?;
        let mut next = current.clone();
        // One exchange per distinct token: per-number tokens often repeat the main one.
        let mut exchanged: BTreeMap<String, String> = BTreeMap::new();
        let tokens = std::iter::once(current.access_token.clone()).chain(current.phone_number_tokens.values().cloned());
        for token in tokens {
            if exchanged.contains_key(&token) {
                continue;
            }
            let new = self
                .meta
                .exchange_token(&current, &token)
                .await
                .map_err(|error| RotationError::Meta { step: "createSecret", error })?;
            exchanged.insert(token, new.access_token);
        }
        let renew = |token: &String| exchanged.get(token).cloned().unwrap_or_else(|| token.clone());
        next.access_token = renew(&current.access_token);
        next.phone_number_tokens = current.phone_number_tokens.iter().map(|(id, t)| (id.clone(), renew(t))).collect();
        next.verify_token = self.random.verify_token()?;
        let text = serde_json::to_string(&next).map_err(|e| RotationError::Secret(e.to_string()))?;
        self.vault.put_pending(&event.secret_id, &event.token, &text).await?;
        tracing::info!(tokens = exchanged.len(), "pending value stored");
        Ok(())
    }

    async fn set(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let pending = self.pending(event).await?;
        let meta_error = |error| RotationError::Meta { step: "setSecret", error };
        let callback = match self.meta.callback_url(&pending).await.map_err(meta_error)? {
            Some(url) => url,
            None => self.fallback_webhook_url.clone().ok_or_else(|| {
                RotationError::Secret(format!(
                    "app {} has no webhook subscription and WEBHOOK_URL is not set: register the webhook first",
                    pending.app_id
                ))
            })?,
        };
        self.meta.subscribe(&pending, &callback, &pending.verify_token).await.map_err(meta_error)?;
        Ok(())
    }

    async fn test(&self, event: &RotationEvent, now_s: u64) -> Result<(), RotationError> {
        let pending = self.pending(event).await?;
        if pending.verify_token.trim().is_empty() {
            return Err(RotationError::Test("the pending verify token is empty".into()));
        }
        // Each distinct token once (per-number tokens often repeat the main one).
        let mut seen = std::collections::BTreeSet::new();
        let tokens = std::iter::once(("access_token", &pending.access_token))
            .chain(pending.phone_number_tokens.iter().map(|(id, t)| (id.as_str(), t)))
            .filter(|(_, token)| seen.insert(token.as_str()));
        for (name, token) in tokens {
            let debug = self
                .meta
                .debug_token(&pending, token)
                .await
                .map_err(|error| RotationError::Meta { step: "testSecret", error })?;
            debug
                .check_new(&pending.app_id, now_s)
                .map_err(|reason| RotationError::Test(format!("{name}: {reason}")))?;
        }
        Ok(())
    }

    async fn finish(&self, event: &RotationEvent, current: Option<&str>) -> Result<(), RotationError> {
        self.vault.move_stage(&event.secret_id, SecretStage::Current, Some(&event.token), current).await?;
        self.vault.move_stage(&event.secret_id, SecretStage::Pending, None, Some(&event.token)).await?;
        tracing::info!("rotation finished");
        Ok(())
    }
}
