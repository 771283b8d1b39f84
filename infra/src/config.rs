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

    /// An optional variable (`None` when unset or blank).
    #[must_use]
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// [`MESSAGING_LIMIT`], parsed.
    pub fn messaging_limit(&self) -> Result<Option<wa_core::limit::Tier>, ConfigError> {
        let Some(text) = (self.0)(MESSAGING_LIMIT).filter(|t| !t.trim().is_empty()) else { return Ok(None) };
        wa_core::limit::parse_tier(&serde_json::Value::String(text.clone())).map(Some).ok_or_else(|| {
            ConfigError::Invalid {
                name: MESSAGING_LIMIT,
                reason: format!("{text:?} is not a tier (TIER_250, TIER_2K, …)"),
            }
        })
    }

    /// [`PORTFOLIOS`], parsed.
    pub fn portfolios(&self) -> Result<wa_core::limit::Portfolios, ConfigError> {
        wa_core::limit::Portfolios::parse(&(self.0)(PORTFOLIOS).unwrap_or_default())
            .map_err(|reason| ConfigError::Invalid { name: PORTFOLIOS, reason })
    }

    /// The events' destination: the bus (`EVENT_BUS_NAME`) or the events queue
    /// (`EVENTS_QUEUE_URL`, with `FALLBACK_QUEUE_URL` when set); an error when neither is set.
    pub fn events(&self) -> Result<EventsConfig, ConfigError> {
        let bus = self.optional(crate::eventbridge::EVENT_BUS_NAME);
        let queue = self.optional(EVENTS_QUEUE_URL);
        if bus.is_none() && queue.is_none() {
            return Err(ConfigError::Missing {
                name: EVENTS_QUEUE_URL,
                hint: "the events SQS queue's URL, or EVENT_BUS_NAME: the pipeline's EventBridge bus",
            });
        }
        Ok(EventsConfig { bus, queue, fallback: self.optional(crate::eventbridge::FALLBACK_QUEUE_URL) })
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
/// `WEBHOOK_MAX_AGE_DAYS`: events older than this many days are dropped at ingest as replays
/// (default 8; 0 accepts any age; 1 to 7 are refused, being within Meta's retries).
pub const WEBHOOK_MAX_AGE_DAYS: &str = "WEBHOOK_MAX_AGE_DAYS";
/// `SECRET_CACHE_TTL_SECONDS`: how long secrets are cached.
pub const SECRET_CACHE_TTL_SECONDS: &str = "SECRET_CACHE_TTL_SECONDS";

/// `APP_SECRET_IDS`: further Meta apps, `app_id=secret,app_id=secret` (their webhooks arrive on
/// `/webhook/<app_id>`).
pub const APP_SECRET_IDS: &str = "APP_SECRET_IDS";
/// `PHONE_NUMBER_APPS`: which of those apps owns a business number, `phone_number_id=app_id,...`
/// (other numbers belong to the default app).
pub const PHONE_NUMBER_APPS: &str = "PHONE_NUMBER_APPS";

/// Further apps and who owns which number (see [`wa_core::apps`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppsConfig {
    /// app_id → secret name or ARN.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// phone_number_id → app_id.
    pub numbers: std::collections::BTreeMap<String, String>,
}

fn pairs<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    shape: &str,
) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let mut map = std::collections::BTreeMap::new();
    let Some(text) = (env.0)(name).filter(|t| !t.trim().is_empty()) else { return Ok(map) };
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
            return Err(ConfigError::Invalid { name, reason: format!("{pair:?} is not {shape}") });
        };
        if key.is_empty() || value.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid { name, reason: format!("{pair:?} is not {shape} (ids are digits)") });
        }
        if map.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ConfigError::Invalid { name, reason: format!("{key} is listed twice") });
        }
    }
    Ok(map)
}

impl AppsConfig {
    /// Reads [`APP_SECRET_IDS`] and [`PHONE_NUMBER_APPS`]; every app a number names must be listed.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let secrets = pairs(env, APP_SECRET_IDS, "app_id=secret")?;
        let numbers = pairs(env, PHONE_NUMBER_APPS, "phone_number_id=app_id")?;
        if let Some((number, app)) = numbers.iter().find(|(_, app)| !secrets.contains_key(*app)) {
            return Err(ConfigError::Invalid {
                name: PHONE_NUMBER_APPS,
                reason: format!("{number} belongs to app {app}, which {APP_SECRET_IDS} does not list"),
            });
        }
        Ok(Self { secrets, numbers })
    }
}

/// What webhook-verify needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// See [`SECRET_ID`].
    pub secret_id: String,
    /// See [`SECRET_CACHE_TTL_SECONDS`].
    pub secret_ttl_seconds: u64,
    /// See [`AppsConfig`].
    pub apps: AppsConfig,
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
            apps: AppsConfig::from_env(env)?,
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
    /// See [`AppsConfig`].
    pub apps: AppsConfig,
    /// See [`INBOUND_QUEUE_URL`].
    pub inbound_queue_url: String,
    /// See [`PAYLOAD_BUCKET`].
    pub payload_bucket: String,
    /// See [`INBOUND_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// See [`WEBHOOK_MAX_AGE_DAYS`]: the acceptance window in seconds, `None` for any age.
    pub max_event_age_s: Option<u64>,
}

impl IngestConfig {
    /// Reads and validates the variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let verify = VerifyConfig::from_env(env)?;
        let max = env.number(INBOUND_MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES as u64, 1024, 1_048_576)?;
        let days = env.number(WEBHOOK_MAX_AGE_DAYS, wa_core::replay::DEFAULT_MAX_AGE_S / 86_400, 0, 36_500)?;
        let max_event_age_s = wa_core::replay::window_days(days)
            .map_err(|e| ConfigError::Invalid { name: WEBHOOK_MAX_AGE_DAYS, reason: e.to_string() })?;
        Ok(Self {
            secret_id: verify.secret_id,
            secret_ttl_seconds: verify.secret_ttl_seconds,
            apps: verify.apps,
            inbound_queue_url: env.required(INBOUND_QUEUE_URL, "the URL of the inbound SQS queue")?,
            payload_bucket: env.required(PAYLOAD_BUCKET, "the S3 bucket for parked bodies and oversized events")?,
            max_message_bytes: usize::try_from(max).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            max_event_age_s,
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
        assert!(ok.apps.secrets.is_empty());
        assert_eq!(ok.max_event_age_s, Some(8 * 86_400), "replays past 8 days are dropped by default");
    }

    #[test]
    fn the_replay_window_outlasts_metas_retries_or_is_off() {
        let with = |days: &'static str| {
            IngestConfig::from_env(&env(&[
                (SECRET_ID, "s"),
                (INBOUND_QUEUE_URL, "q"),
                (PAYLOAD_BUCKET, "b"),
                (WEBHOOK_MAX_AGE_DAYS, days),
            ]))
        };
        assert_eq!(with("30").unwrap().max_event_age_s, Some(30 * 86_400));
        assert_eq!(with("0").unwrap().max_event_age_s, None, "0: any age");
        for bad in ["7", "1", "x", "-1"] {
            let err = with(bad).unwrap_err();
            assert!(err.to_string().contains("WEBHOOK_MAX_AGE_DAYS"), "{bad}: {err}");
        }
        assert!(with("7").unwrap_err().to_string().contains("Meta's 7 days of retries"));
    }

    #[test]
    fn several_apps_are_listed_and_checked() {
        let base = [(SECRET_ID, "s")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            VerifyConfig::from_env(&env(&all))
        };
        let ok = with(&[(APP_SECRET_IDS, "111=wa/app1, 222=arn:aws:secretsmanager:x"), (PHONE_NUMBER_APPS, "900=222")])
            .unwrap();
        assert_eq!(ok.apps.secrets["222"], "arn:aws:secretsmanager:x");
        assert_eq!(ok.apps.numbers["900"], "222");
        let err = with(&[(PHONE_NUMBER_APPS, "900=333")]).unwrap_err();
        assert!(err.to_string().contains("900 belongs to app 333"), "{err}");
        let err = with(&[(APP_SECRET_IDS, "111")]).unwrap_err();
        assert!(err.to_string().contains("APP_SECRET_IDS") && err.to_string().contains("app_id=secret"), "{err}");
        let err = with(&[(APP_SECRET_IDS, "1=a,1=b")]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = with(&[(APP_SECRET_IDS, "abc=a")]).unwrap_err();
        assert!(err.to_string().contains("digits"), "{err}");
    }
}

/// `STATE_TABLE`: the DynamoDB state table.
pub const STATE_TABLE: &str = "STATE_TABLE";
/// Where a function publishes events for consumers ([`Env::events`]; built by
/// [`crate::eventbridge::Events::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsConfig {
    /// `EVENT_BUS_NAME`: the pipeline's EventBridge bus; when set, the rest is unused.
    pub bus: Option<String>,
    /// See [`EVENTS_QUEUE_URL`].
    pub queue: Option<String>,
    /// `FALLBACK_QUEUE_URL`: without a bus, the fallback function's queue for the events it wants.
    pub fallback: Option<String>,
}

/// `EVENTS_QUEUE_URL`: where outcomes (and later enriched events) go.
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
/// `OUTBOUND_QUEUE_URL`: the FIFO queue of send requests.
pub const OUTBOUND_QUEUE_URL: &str = "OUTBOUND_QUEUE_URL";
/// `GRAPH_API_BASE`: the Graph API host (the simulator's URL locally).
pub const GRAPH_API_BASE: &str = "GRAPH_API_BASE";
/// `GRAPH_API_VERSION`: the pinned Graph API version.
pub const GRAPH_API_VERSION: &str = "GRAPH_API_VERSION";
/// `GRAPH_TIMEOUT_MS`: the Graph client's timeout.
pub const GRAPH_TIMEOUT_MS: &str = "GRAPH_TIMEOUT_MS";
/// `MESSAGES_PER_SECOND`: throughput per business number.
pub const MESSAGES_PER_SECOND: &str = "MESSAGES_PER_SECOND";
/// `MESSAGES_PER_SECOND_BY_NUMBER`: per-number overrides, `id=rate,id=rate`.
pub const MESSAGES_PER_SECOND_BY_NUMBER: &str = "MESSAGES_PER_SECOND_BY_NUMBER";

/// What the sender needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderEnv {
    /// See [`SECRET_ID`].
    pub secret_id: String,
    /// See [`SECRET_CACHE_TTL_SECONDS`].
    pub secret_ttl_seconds: u64,
    /// See [`AppsConfig`].
    pub apps: AppsConfig,
    /// See [`STATE_TABLE`].
    pub state_table: String,
    /// Where events for consumers go.
    pub events: EventsConfig,
    /// See [`OUTBOUND_QUEUE_URL`].
    pub outbound_queue_url: String,
    /// See [`GRAPH_API_BASE`].
    pub graph_api_base: String,
    /// See [`GRAPH_API_VERSION`].
    pub graph_api_version: String,
    /// See [`GRAPH_TIMEOUT_MS`].
    pub graph_timeout_ms: u64,
    /// See [`MESSAGES_PER_SECOND`].
    pub messages_per_second: u32,
    /// See [`MESSAGES_PER_SECOND_BY_NUMBER`].
    pub rates: std::collections::HashMap<String, u32>,
    /// See [`UNKNOWN_TEMPLATES`].
    pub refuse_unknown_templates: bool,
    /// See [`MESSAGING_LIMIT`].
    pub messaging_limit: Option<wa_core::limit::Tier>,
    /// See [`PORTFOLIOS`].
    pub portfolios: wa_core::limit::Portfolios,
}

/// `MESSAGING_LIMIT`: the portfolio's messaging-limit tier until Meta's webhooks announce one
/// (`TIER_250`, `TIER_2K`, …, `TIER_UNLIMITED`, or a number); unset: no limit is applied until then.
pub const MESSAGING_LIMIT: &str = "MESSAGING_LIMIT";
/// `PORTFOLIOS`: `id=portfolio` pairs (a phone number id or a WABA id) for deployments serving
/// several business portfolios; unset: one portfolio.
pub const PORTFOLIOS: &str = "PORTFOLIOS";

/// `UNKNOWN_TEMPLATES`: `send` (default) or `refuse` template sends the registry has never seen.
pub const UNKNOWN_TEMPLATES: &str = "UNKNOWN_TEMPLATES";

/// `MEDIA_QUEUE_URL`: where the event processor sends inbound media messages (the media fetcher's
/// queue); unset, they go straight to the events queue with Meta's media id only.
pub const MEDIA_QUEUE_URL: &str = "MEDIA_QUEUE_URL";
/// `MEDIA_MAX_RECEIVES`: the media queue's receive limit, at which the fetcher gives up on
/// transient failures and forwards the event with `media.error` (keep it the queue's
/// `maxReceiveCount`).
pub const MEDIA_MAX_RECEIVES: &str = "MEDIA_MAX_RECEIVES";

/// The media fetcher's variables.
#[derive(Debug, Clone)]
pub struct MediaEnv {
    /// The app secrets, for access tokens.
    pub verify: VerifyConfig,
    /// See [`STATE_TABLE`].
    pub state_table: String,
    /// Where events for consumers go.
    pub events: EventsConfig,
    /// See [`PAYLOAD_BUCKET`].
    pub payload_bucket: String,
    /// See [`GRAPH_API_BASE`].
    pub graph_api_base: String,
    /// See [`GRAPH_API_VERSION`].
    pub graph_api_version: String,
    /// See [`MEDIA_MAX_RECEIVES`].
    pub max_receives: u32,
}

impl MediaEnv {
    /// Reads and validates the variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            verify: VerifyConfig::from_env(env)?,
            state_table: env.required(STATE_TABLE, "the DynamoDB state table")?,
            events: env.events()?,
            payload_bucket: env.required(PAYLOAD_BUCKET, "the S3 bucket media is stored in")?,
            graph_api_base: (env.0)(GRAPH_API_BASE)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::graph::DEFAULT_BASE.into()),
            graph_api_version: (env.0)(GRAPH_API_VERSION)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::graph::DEFAULT_VERSION.into()),
            max_receives: u32::try_from(env.number(MEDIA_MAX_RECEIVES, 5, 2, 100)?).unwrap_or(5),
        })
    }
}

impl SenderEnv {
    /// Reads and validates the variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let verify = VerifyConfig::from_env(env)?;
        let mut rates = std::collections::HashMap::new();
        if let Some(text) = (env.0)(MESSAGES_PER_SECOND_BY_NUMBER).filter(|t| !t.trim().is_empty()) {
            for pair in text.split(',') {
                let parsed = pair
                    .split_once('=')
                    .and_then(|(id, rate)| Some((id.trim().to_owned(), rate.trim().parse::<u32>().ok()?)))
                    .filter(|(id, rate)| !id.is_empty() && (1..=1000).contains(rate));
                let Some((id, rate)) = parsed else {
                    return Err(ConfigError::Invalid {
                        name: MESSAGES_PER_SECOND_BY_NUMBER,
                        reason: format!("{pair:?} is not phone_number_id=rate with a rate from 1 to 1000"),
                    });
                };
                rates.insert(id, rate);
            }
        }
        Ok(Self {
            secret_id: verify.secret_id,
            secret_ttl_seconds: verify.secret_ttl_seconds,
            apps: verify.apps,
            state_table: env.required(STATE_TABLE, "the DynamoDB state table")?,
            events: env.events()?,
            outbound_queue_url: env.required(OUTBOUND_QUEUE_URL, "the URL of the outbound FIFO queue")?,
            graph_api_base: (env.0)(GRAPH_API_BASE)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::graph::DEFAULT_BASE.into()),
            graph_api_version: (env.0)(GRAPH_API_VERSION)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::graph::DEFAULT_VERSION.into()),
            graph_timeout_ms: env.number(GRAPH_TIMEOUT_MS, 10_000, 100, 60_000)?,
            messages_per_second: u32::try_from(env.number(MESSAGES_PER_SECOND, 80, 1, 1000)?).unwrap_or(80),
            rates,
            messaging_limit: env.messaging_limit()?,
            portfolios: env.portfolios()?,
            refuse_unknown_templates: match (env.0)(UNKNOWN_TEMPLATES).as_deref().map(str::trim) {
                None | Some("" | "send") => false,
                Some("refuse") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: UNKNOWN_TEMPLATES,
                        reason: format!("{other:?} is neither send nor refuse"),
                    });
                }
            },
        })
    }
}
