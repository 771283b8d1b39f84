//! The app secret from Secrets Manager, read by explicit version stage and cached.
//!
//! Reads always name the stage (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`): that is what correct
//! code does on AWS, and moto returns a stale version otherwise. Values are cached for a TTL
//! (≤ 5 minutes); a forced refresh is rate-limited; when Secrets Manager is briefly unreachable the
//! last good value is served for up to `max_stale`, after which the caller gets an error (and the
//! webhook functions answer 503, never an unverified 200).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use wa_core::ports::{SecretError, SecretSource};
use wa_core::secrets::{AppSecrets, SecretStage};

use crate::aws::describe;

/// Fetches one stage of the secret, uncached.
pub trait SecretFetch: Send + Sync {
    /// The value at `stage`, or `None` when no version has that stage.
    fn fetch(&self, stage: SecretStage) -> impl Future<Output = Result<Option<AppSecrets>, SecretError>> + Send;
}

/// Secrets Manager `GetSecretValue` with an explicit `VersionStage`.
#[derive(Debug, Clone)]
pub struct SecretsManagerFetch {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerFetch {
    /// Reads `secret_id` (name or ARN).
    #[must_use]
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into() }
    }
}

impl SecretFetch for SecretsManagerFetch {
    async fn fetch(&self, stage: SecretStage) -> Result<Option<AppSecrets>, SecretError> {
        let result =
            self.client.get_secret_value().secret_id(&self.secret_id).version_stage(stage.as_aws()).send().await;
        match result {
            Ok(output) => match output.secret_string() {
                Some(text) => AppSecrets::from_json(text).map(Some).map_err(SecretError::Malformed),
                // A rotation has just begun: the pending version has no value yet.
                None if stage == SecretStage::Pending => Ok(None),
                None => Err(SecretError::Malformed("no SecretString".into())),
            },
            Err(e)
                if stage != SecretStage::Current
                    && e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(SecretError::Unavailable(describe(&e))),
        }
    }
}

/// The cached Secrets Manager source every function uses: `secret_id` read by stage, cached for
/// `ttl_seconds` (≤ 300) with the default refresh and staleness policy.
#[must_use]
pub fn secrets_manager(
    sdk: &aws_config::SdkConfig,
    secret_id: String,
    ttl_seconds: u64,
) -> CachedSecrets<SecretsManagerFetch> {
    let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(sdk), secret_id);
    CachedSecrets::new(fetch, CachePolicy { ttl: Duration::from_secs(ttl_seconds.min(300)), ..CachePolicy::default() })
}

/// Every app's cached source: the default secret, the others of `apps`, and the number owners.
#[must_use]
pub fn apps(
    sdk: &aws_config::SdkConfig,
    default_secret_id: String,
    apps: &crate::config::AppsConfig,
    ttl_seconds: u64,
) -> wa_core::apps::Apps<CachedSecrets<SecretsManagerFetch>> {
    wa_core::apps::Apps {
        default: secrets_manager(sdk, default_secret_id, ttl_seconds),
        others: apps
            .secrets
            .iter()
            .map(|(app, id)| (app.clone(), secrets_manager(sdk, id.clone(), ttl_seconds)))
            .collect(),
        numbers: apps.numbers.clone(),
    }
}

/// Cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// How long a value is served without asking again (≤ 5 minutes).
    pub ttl: Duration,
    /// The shortest time between two forced refreshes of a stage.
    pub min_refresh_interval: Duration,
    /// How long a last good value is served while the store is unreachable.
    pub max_stale: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            // Short enough that a rotation's setSecret, retried by Secrets Manager within seconds of
            // a forced refresh, finds the new pending verify token (the fault run's rotations did
            // not, at 30 s); long enough that GETs with made-up tokens cost at most one read per
            // stage every 5 s per instance.
            min_refresh_interval: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Option<Arc<AppSecrets>>,
    fetched_at: Instant,
    /// When the last fetch failed; no new attempt before `min_refresh_interval` has passed.
    failed_at: Option<Instant>,
    /// When the last forced refresh was made; forced refreshes are at most one per interval.
    forced_at: Option<Instant>,
}

/// A cached [`SecretSource`] over any [`SecretFetch`].
#[derive(Debug)]
pub struct CachedSecrets<F> {
    fetch: F,
    policy: CachePolicy,
    entries: Mutex<HashMap<SecretStage, Entry>>,
}

impl<F: SecretFetch> CachedSecrets<F> {
    /// A cache over `fetch` with `policy`.
    pub fn new(fetch: F, policy: CachePolicy) -> Self {
        Self { fetch, policy, entries: Mutex::new(HashMap::new()) }
    }

    async fn load(&self, stage: SecretStage, force: bool) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        let mut entries = self.entries.lock().await;
        let now = Instant::now();
        if let Some(entry) = entries.get(&stage) {
            let age = now.saturating_duration_since(entry.fetched_at);
            let recently_forced =
                entry.forced_at.is_some_and(|t| now.saturating_duration_since(t) < self.policy.min_refresh_interval);
            let fresh = if force { recently_forced } else { age < self.policy.ttl };
            let backing_off = entry
                .failed_at
                .is_some_and(|failed| now.saturating_duration_since(failed) < self.policy.min_refresh_interval);
            if fresh || (backing_off && age < self.policy.max_stale) {
                return Ok(entry.value.clone());
            }
        }
        let forced_at = if force { Some(now) } else { entries.get(&stage).and_then(|e| e.forced_at) };
        match self.fetch.fetch(stage).await {
            Ok(value) => {
                let value = value.map(Arc::new);
                // A stage whose value moved (a rotation's finishSecret: the pending version became
                // current and AWSPENDING went) means the other stages' cached values may be stale
                // too: they are dropped, so the next read of each asks the store — not subject to
                // the forced-refresh limit, which would otherwise refuse the new current value for
                // up to `min_refresh_interval` after a refresh made just before the move.
                let moved = entries.get(&stage).is_some_and(|entry| entry.value != value);
                if moved {
                    entries.retain(|other, _| *other == stage);
                }
                entries.insert(stage, Entry { value: value.clone(), fetched_at: now, failed_at: None, forced_at });
                Ok(value)
            }
            Err(error) => match entries.get_mut(&stage) {
                Some(entry) if now.saturating_duration_since(entry.fetched_at) < self.policy.max_stale => {
                    tracing::warn!(stage = stage.as_aws(), %error, "secret store unreachable; serving last good value");
                    entry.failed_at = Some(now);
                    entry.forced_at = forced_at;
                    Ok(entry.value.clone())
                }
                _ => Err(error),
            },
        }
    }
}

impl<F: SecretFetch> SecretSource for CachedSecrets<F> {
    async fn get(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        self.load(stage, false).await
    }

    async fn refresh(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        self.load(stage, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    struct Fake {
        calls: AtomicU32,
        down: AtomicBool,
        version: AtomicU32,
    }

    impl SecretFetch for Fake {
        async fn fetch(&self, stage: SecretStage) -> Result<Option<AppSecrets>, SecretError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(SecretError::Unavailable("down".into()));
            }
            if stage == SecretStage::Pending {
                return Ok(None);
            }
            let v = self.version.load(Ordering::SeqCst);
            Ok(Some(AppSecrets {
                app_id: "app".into(),
                app_secret: format!("secret-{v}"),
                verify_token: "vt".into(),
                access_token: "at".into(),
                phone_number_tokens: Default::default(),
            }))
        }
    }

    fn cache() -> CachedSecrets<Fake> {
        let fake = Fake { calls: AtomicU32::new(0), down: AtomicBool::new(false), version: AtomicU32::new(1) };
        CachedSecrets::new(fake, CachePolicy::default())
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_refresh_rate_limit_and_last_good() {
        let c = cache();
        assert_eq!(c.get(SecretStage::Current).await.unwrap().unwrap().app_secret, "secret-1");
        c.get(SecretStage::Current).await.unwrap();
        assert_eq!(c.fetch.calls.load(Ordering::SeqCst), 1, "second read is cached");
        assert!(c.get(SecretStage::Pending).await.unwrap().is_none());
        c.get(SecretStage::Pending).await.unwrap();
        assert_eq!(c.fetch.calls.load(Ordering::SeqCst), 2, "absence is cached too");

        c.fetch.version.store(2, Ordering::SeqCst);
        assert_eq!(c.refresh(SecretStage::Current).await.unwrap().unwrap().app_secret, "secret-2", "first refresh");
        c.fetch.version.store(3, Ordering::SeqCst);
        assert_eq!(c.refresh(SecretStage::Current).await.unwrap().unwrap().app_secret, "secret-2", "rate-limited");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.refresh(SecretStage::Current).await.unwrap().unwrap().app_secret, "secret-3");
        assert_eq!(
            c.get(SecretStage::Current).await.unwrap().unwrap().app_secret,
            "secret-3",
            "refresh fills the cache"
        );

        c.fetch.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(c.get(SecretStage::Current).await.unwrap().unwrap().app_secret, "secret-3", "last good");
        let calls = c.fetch.calls.load(Ordering::SeqCst);
        c.get(SecretStage::Current).await.unwrap();
        assert_eq!(c.fetch.calls.load(Ordering::SeqCst), calls, "no new attempt right after a failure");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(c.get(SecretStage::Current).await.is_err(), "too stale");
    }

    /// A store whose pending version moves to current, as a rotation's finishSecret does.
    struct Rotating {
        finished: AtomicBool,
    }

    fn secrets(verify_token: &str) -> AppSecrets {
        AppSecrets {
            app_id: "app".into(),
            app_secret: "s".into(),
            verify_token: verify_token.into(),
            access_token: "at".into(),
            phone_number_tokens: Default::default(),
        }
    }

    impl SecretFetch for Rotating {
        async fn fetch(&self, stage: SecretStage) -> Result<Option<AppSecrets>, SecretError> {
            let finished = self.finished.load(Ordering::SeqCst);
            Ok(match (stage, finished) {
                (SecretStage::Current, false) => Some(secrets("old")),
                (SecretStage::Pending, false) | (SecretStage::Current, true) => Some(secrets("new")),
                _ => None,
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_rotation_is_seen_at_once_even_right_after_a_forced_refresh() {
        let c = CachedSecrets::new(
            Rotating { finished: AtomicBool::new(false) },
            CachePolicy { ttl: Duration::from_secs(2), ..CachePolicy::default() },
        );
        // setSecret: Meta verifies with the new token; both stages are refreshed.
        assert_eq!(c.refresh(SecretStage::Current).await.unwrap().unwrap().verify_token, "old");
        assert_eq!(c.refresh(SecretStage::Pending).await.unwrap().unwrap().verify_token, "new");
        // finishSecret; the pending entry expires and is read again: gone.
        c.fetch.finished.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(c.get(SecretStage::Pending).await.unwrap().is_none());
        // Within the forced-refresh limit, the current value is the new one already.
        assert_eq!(c.refresh(SecretStage::Current).await.unwrap().unwrap().verify_token, "new");
    }

    #[tokio::test]
    async fn cold_start_with_store_down_is_an_error() {
        let c = cache();
        c.fetch.down.store(true, Ordering::SeqCst);
        assert!(matches!(c.get(SecretStage::Current).await, Err(SecretError::Unavailable(_))));
    }
}
