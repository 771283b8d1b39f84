//! The Meta app credentials kept in one Secrets Manager secret, and its version stages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A version stage of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretStage {
    /// `AWSCURRENT`: the value in use.
    Current,
    /// `AWSPENDING`: a rotation in progress.
    Pending,
    /// `AWSPREVIOUS`: the value before the last rotation or manual reset.
    Previous,
}

impl SecretStage {
    /// Secrets Manager's name for the stage.
    #[must_use]
    pub fn as_aws(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Pending => "AWSPENDING",
            Self::Previous => "AWSPREVIOUS",
        }
    }
}

/// The JSON stored in the secret. `Debug` never prints a value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSecrets {
    /// The Meta app id.
    pub app_id: String,
    /// The app secret that signs webhooks.
    pub app_secret: String,
    /// The token Meta echoes in the verification GET.
    pub verify_token: String,
    /// The Graph API access token (system user).
    pub access_token: String,
    /// Optional per-business-number tokens, by phone_number_id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phone_number_tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecrets")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("verify_token", &"<redacted>")
            .field("access_token", &"<redacted>")
            .field("phone_number_tokens", &self.phone_number_tokens.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AppSecrets {
    /// Parses the secret string, naming the missing field on error (never echoing values).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            // serde's messages for missing fields name the field only; other errors give a position.
            format!("secret JSON is not valid: {}", e.to_string().split(" at line").next().unwrap_or("invalid"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_errors_name_fields() {
        let s = AppSecrets::from_json(
            r#"{"app_id":"1","app_secret":"s3cr3t","verify_token":"vt","access_token":"EAAtok"}"#,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("EAAtok") && !shown.contains("\"vt\""));
        let err = AppSecrets::from_json(r#"{"app_id":"1","app_secret":"s3cr3t"}"#).unwrap_err();
        assert!(err.contains("verify_token"), "{err}");
        assert!(!err.contains("s3cr3t"));
    }
}
