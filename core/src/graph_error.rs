//! Graph API errors and what to do about them, by Meta's error code (never by HTTP status alone).
//!
//! The table follows `reference/CLOUD_API.md` ("Graph error codes that matter"). Where the sources
//! disagree (368, 131048) we choose the safer class: stop the line rather than hot-retry.

use serde::{Deserialize, Serialize};

/// What the sender does with a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Try again later (throttling, transient failures); the request stays queued.
    Retryable,
    /// Will never succeed as is; the request ends with a failed outcome.
    Permanent,
    /// The access token is invalid or expired: reload the secret and retry once.
    RefreshToken,
    /// The account or number is blocked: stop sending from it, keep everything queued, alarm.
    StopTheLine,
}

impl ErrorClass {
    /// The wire form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::RefreshToken => "refresh_token",
            Self::StopTheLine => "stop_the_line",
        }
    }
}

/// Meta's error object (`{"error": {...}}` of a Graph response).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GraphErrorBody {
    /// Meta's error code.
    #[serde(default)]
    pub code: i64,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// `OAuthException`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Subcode, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    /// `error_data.details`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<serde_json::Value>,
    /// Meta's hint that a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    /// Trace id for Meta support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

impl GraphErrorBody {
    /// Parses a Graph error response body (`{"error": {...}}`); `None` unless it carries a code.
    #[must_use]
    pub fn parse(body: &[u8]) -> Option<Self> {
        let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get_mut("error")?.take();
        if !error.get("code").is_some_and(serde_json::Value::is_i64) {
            return None;
        }
        serde_json::from_value(error).ok()
    }
}

/// Error codes of throttling, where the rate limiter should slow down.
pub const THROUGHPUT_LIMIT: i64 = 130_429;
/// Pair rate limit: too many messages to one recipient; back off 4^X seconds for that recipient.
pub const PAIR_RATE_LIMIT: i64 = 131_056;
/// Re-engagement: the customer-service window is closed.
pub const WINDOW_CLOSED: i64 = 131_047;
/// The user stopped marketing messages.
pub const MARKETING_OPT_OUT: i64 = 131_050;

/// Meta said the message is not for a business-scoped user id (authentication templates need the
/// phone number).
pub const BSUID_NOT_ALLOWED: i64 = 131_062;

/// The class of a Graph error code, in a send response or in a `failed` status (one taxonomy for
/// both; `reference/CLOUD_API_2026.md` §6).
#[must_use]
pub fn classify(code: i64) -> ErrorClass {
    match code {
        // Token expired or invalid; 0 is Meta's generic auth exception.
        0 | 190 => ErrorClass::RefreshToken,
        // Throttling and transient service failures (131057: maintenance, e.g. a throughput
        // upgrade; 131053: a media upload, retried at most as often as the queue allows).
        1 | 2 | 4 | 17 | 32 | 613 | 80_007 | 130_429 | 131_000 | 131_016 | 131_056 | 131_057 | 131_052 | 131_053
        | 132_068 | 132_069 | 133_016 => ErrorClass::Retryable,
        // Account- or number-level blocks and configuration: stop sending from this number, alarm,
        // keep messages queued (131037: no approved display name; 133010: number not registered;
        // 131064: messaging limit reached for template misclassification).
        368 | 130_497 | 131_031 | 131_037 | 131_042 | 131_045 | 131_048 | 131_064 | 133_010 => ErrorClass::StopTheLine,
        // Everything else (parameters, recipients, templates, permissions, windows; 131049 per-user
        // marketing cap, 130472 experiment group, 131062 BSUID recipient, 131063 marketing
        // disabled, 132015/132016 template paused/disabled, 135000) is permanent for the request.
        _ => ErrorClass::Permanent,
    }
}

/// What a code means, in a few words, for outcomes and logs when Meta's message is missing.
#[must_use]
pub fn meaning(code: i64) -> &'static str {
    match code {
        0 | 190 => "access token invalid or expired",
        130_429 => "throughput limit reached",
        130_472 => "the user is in a marketing experiment group",
        131_026 => "undeliverable: not on WhatsApp, terms not accepted, or an old client",
        131_037 => "the number has no approved display name",
        131_042 => "payment problem on the business account",
        131_047 => "more than 24 hours since the user last wrote",
        131_048 => "spam rate limit: too many messages blocked or reported",
        131_049 => "not delivered to keep the ecosystem healthy (per-user marketing limit)",
        131_050 => "the user stopped marketing messages",
        131_052 => "the user's media could not be downloaded",
        131_053 => "media upload failed",
        131_056 => "pair rate limit: too many messages to this user",
        131_057 => "account in maintenance mode",
        131_062 => "a business-scoped user id cannot receive this message (use the phone number)",
        131_063 => "marketing templates are disabled on the Cloud API",
        131_064 => "messaging limit reached (template classification)",
        132_001 => "template missing in that language, or not approved",
        132_015 => "template paused for low quality",
        132_016 => "template disabled",
        133_010 => "phone number not registered",
        135_000 => "generic user error",
        368 => "temporarily blocked for policy violations",
        _ => "error",
    }
}

/// The pair-rate backoff for the `attempt`-th consecutive 131056 to one recipient: 4^X seconds
/// (1, 4, 16, 64, ...), capped at 15 minutes (the longest SQS delay).
#[must_use]
pub fn pair_rate_backoff_seconds(attempt: u32) -> u64 {
    4u64.saturating_pow(attempt).min(900)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_code() {
        for code in [4, 80_007, 130_429, 131_056, 131_000, 131_016, 131_057, 1, 2] {
            assert_eq!(classify(code), ErrorClass::Retryable, "{code}");
        }
        for code in [190, 0] {
            assert_eq!(classify(code), ErrorClass::RefreshToken, "{code}");
        }
        for code in [368, 131_031, 131_048, 131_064, 130_497, 131_042, 131_037, 133_010] {
            assert_eq!(classify(code), ErrorClass::StopTheLine, "{code}");
        }
        for code in [
            100, 131_008, 131_009, 131_026, 131_047, 131_050, 131_051, 132_000, 132_001, 132_015, 132_016, 10, 200,
            131_049, 130_472, 131_062, 131_063, 135_000,
        ] {
            assert_eq!(classify(code), ErrorClass::Permanent, "{code}");
        }
    }

    #[test]
    fn backoff_is_4_to_the_x() {
        let seconds: Vec<u64> = (0..7).map(pair_rate_backoff_seconds).collect();
        assert_eq!(seconds, [1, 4, 16, 64, 256, 900, 900]);
        assert_eq!(pair_rate_backoff_seconds(u32::MAX), 900);
    }

    #[test]
    fn parses_meta_error_json() {
        let body = br#"{"error":{"message":"(#131056) Pair rate limit hit","type":"OAuthException","code":131056,
            "error_data":{"messaging_product":"whatsapp","details":"Too many messages"},"fbtrace_id":"Az8"}}"#;
        let e = GraphErrorBody::parse(body).unwrap();
        assert_eq!(e.code, 131_056);
        assert_eq!(e.fbtrace_id.as_deref(), Some("Az8"));
        assert!(GraphErrorBody::parse(b"<html>").is_none());
        assert!(GraphErrorBody::parse(br#"{"error":{"message":"unavailable"}}"#).is_none(), "no code, no Meta error");
    }
}
