//! Rotation of the app secret (Secrets Manager's four steps) and the token watchdog: the rules,
//! without the calls.
//!
//! A 60-day token rotated every 60 days has no margin, and an expired token cannot be exchanged:
//! the watchdog reads the token's expiry daily and starts a rotation when fewer than
//! [`ROTATE_EARLY_DAYS`] remain. A freshly exchanged token must be valid for at least
//! [`MIN_NEW_TOKEN_DAYS`] before it becomes current.

use serde::Deserialize;

/// The watchdog starts a rotation when the token expires in fewer days than this.
pub const ROTATE_EARLY_DAYS: u64 = 14;
/// testSecret refuses a new token that expires sooner than this.
pub const MIN_NEW_TOKEN_DAYS: u64 = 50;
/// The permissions the pipeline needs.
pub const REQUIRED_SCOPES: [&str; 2] = ["whatsapp_business_messaging", "whatsapp_business_management"];

const DAY: u64 = 86_400;

/// One of Secrets Manager's rotation steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Make the new value and store it as AWSPENDING.
    Create,
    /// Tell Meta about the new value (the webhook verify token).
    Set,
    /// Check the new value works.
    Test,
    /// Make the new value AWSCURRENT.
    Finish,
}

impl Step {
    /// Parses Secrets Manager's `Step`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "createSecret" => Ok(Self::Create),
            "setSecret" => Ok(Self::Set),
            "testSecret" => Ok(Self::Test),
            "finishSecret" => Ok(Self::Finish),
            other => Err(format!("unknown rotation step {other:?}")),
        }
    }

    /// Secrets Manager's name for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "createSecret",
            Self::Set => "setSecret",
            Self::Test => "testSecret",
            Self::Finish => "finishSecret",
        }
    }
}

/// The event Secrets Manager invokes a rotation function with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RotationEvent {
    /// `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    #[serde(rename = "Step")]
    pub step: String,
    /// The secret's ARN or name.
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    /// The version being made: idempotency key of every step.
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
}

/// What Meta's `debug_token` says of a token (the `data` object).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct TokenDebug {
    /// The app that owns it.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Valid now.
    #[serde(default)]
    pub is_valid: bool,
    /// Expiry, Unix seconds; 0 or absent: never.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Granted permissions.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Meta's reason when invalid.
    #[serde(default)]
    pub error: Option<TokenDebugError>,
}

/// `debug_token`'s `error`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenDebugError {
    /// Meta's code (190 for expired or revoked).
    #[serde(default)]
    pub code: Option<i64>,
    /// Meta's message.
    #[serde(default)]
    pub message: Option<String>,
}

impl TokenDebug {
    /// Seconds until expiry; `None` when the token never expires.
    #[must_use]
    pub fn seconds_left(&self, now: u64) -> Option<u64> {
        self.expires_at.filter(|t| *t > 0).map(|t| t.saturating_sub(now))
    }

    /// Why the token cannot serve the pipeline (`app_id`'s app, the WhatsApp scopes, valid), if so.
    #[must_use]
    pub fn unusable(&self, app_id: &str, now: u64) -> Option<String> {
        if !self.is_valid {
            let reason = self.error.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| "not valid".into());
            return Some(format!("the token is invalid: {reason}"));
        }
        if self.seconds_left(now) == Some(0) {
            return Some("the token has expired".into());
        }
        if self.app_id.as_deref() != Some(app_id) {
            return Some(format!(
                "the token belongs to app {:?}, not {app_id:?}",
                self.app_id.as_deref().unwrap_or("")
            ));
        }
        let missing: Vec<&str> =
            REQUIRED_SCOPES.iter().copied().filter(|s| !self.scopes.iter().any(|have| have == s)).collect();
        if !missing.is_empty() {
            return Some(format!("the token lacks the scopes {}", missing.join(", ")));
        }
        None
    }

    /// testSecret's rule for a new token: usable, and valid for at least [`MIN_NEW_TOKEN_DAYS`]
    /// (or never expiring).
    pub fn check_new(&self, app_id: &str, now: u64) -> Result<(), String> {
        if let Some(reason) = self.unusable(app_id, now) {
            return Err(reason);
        }
        match self.seconds_left(now) {
            Some(left) if left < MIN_NEW_TOKEN_DAYS * DAY => {
                Err(format!("the new token expires in {} days, fewer than {MIN_NEW_TOKEN_DAYS}", left / DAY))
            }
            _ => Ok(()),
        }
    }
}

/// What the watchdog does about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Nothing: it never expires, or expires in `days_left` days (≥ [`ROTATE_EARLY_DAYS`]).
    Healthy {
        /// Whole days left; `None` never expires.
        days_left: Option<u64>,
    },
    /// Start a rotation now.
    RotateEarly {
        /// Whole days left.
        days_left: u64,
    },
    /// The token cannot be used (expired, revoked, wrong app or scopes): alarm, an operator must
    /// store a new token (an expired token cannot be exchanged).
    Invalid(String),
}

/// The watchdog's decision for a token of `app_id`.
#[must_use]
pub fn watch(debug: &TokenDebug, app_id: &str, now: u64) -> Watch {
    if let Some(reason) = debug.unusable(app_id, now) {
        return Watch::Invalid(reason);
    }
    match debug.seconds_left(now) {
        None => Watch::Healthy { days_left: None },
        Some(left) if left < ROTATE_EARLY_DAYS * DAY => Watch::RotateEarly { days_left: left / DAY },
        Some(left) => Watch::Healthy { days_left: Some(left / DAY) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn token(expires_at: Option<u64>) -> TokenDebug {
        TokenDebug {
            app_id: Some("42".into()),
            is_valid: true,
            expires_at,
            scopes: REQUIRED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            error: None,
        }
    }

    #[test]
    fn steps_round_trip_and_unknown_steps_are_named() {
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            assert_eq!(Step::parse(step.as_str()), Ok(step));
        }
        assert!(Step::parse("rotate").unwrap_err().contains("\"rotate\""));
    }

    #[test]
    fn the_watchdog_threshold_is_fourteen_days() {
        assert_eq!(watch(&token(Some(NOW + 14 * DAY)), "42", NOW), Watch::Healthy { days_left: Some(14) });
        assert_eq!(watch(&token(Some(NOW + 14 * DAY - 1)), "42", NOW), Watch::RotateEarly { days_left: 13 });
        assert_eq!(watch(&token(Some(NOW + 60)), "42", NOW), Watch::RotateEarly { days_left: 0 });
        assert_eq!(watch(&token(None), "42", NOW), Watch::Healthy { days_left: None });
        assert_eq!(watch(&token(Some(0)), "42", NOW), Watch::Healthy { days_left: None });
        assert!(matches!(watch(&token(Some(NOW)), "42", NOW), Watch::Invalid(r) if r.contains("expired")));
    }

    #[test]
    fn unusable_tokens_are_named() {
        let mut t = token(None);
        t.is_valid = false;
        t.error = Some(TokenDebugError { code: Some(190), message: Some("Session has expired".into()) });
        assert!(matches!(watch(&t, "42", NOW), Watch::Invalid(r) if r.contains("Session has expired")));
        assert!(token(None).unusable("43", NOW).unwrap().contains("app \"42\""));
        let mut t = token(None);
        t.scopes.retain(|s| s != "whatsapp_business_management");
        assert!(t.unusable("42", NOW).unwrap().contains("whatsapp_business_management"));
    }

    #[test]
    fn a_new_token_must_last_fifty_days() {
        assert!(token(Some(NOW + 60 * DAY)).check_new("42", NOW).is_ok());
        assert!(token(None).check_new("42", NOW).is_ok());
        assert!(token(Some(NOW + 49 * DAY)).check_new("42", NOW).unwrap_err().contains("49 days"));
    }

    #[test]
    fn debug_token_data_parses_as_meta_sends_it() {
        let data: TokenDebug = serde_json::from_str(
            r#"{"app_id":"42","type":"SYSTEM_USER","application":"x","data_access_expires_at":0,
                "expires_at":0,"is_valid":true,"scopes":["whatsapp_business_messaging","whatsapp_business_management"]}"#,
        )
        .unwrap();
        assert_eq!(data.unusable("42", NOW), None);
        let bad: TokenDebug = serde_json::from_str(
            r#"{"is_valid":false,"scopes":[],"error":{"code":190,"message":"Invalid OAuth access token"}}"#,
        )
        .unwrap();
        assert!(bad.unusable("42", NOW).unwrap().contains("Invalid OAuth"));
    }
}
