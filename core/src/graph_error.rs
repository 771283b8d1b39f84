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

/// The class of a Graph error code.
#[must_use]
pub fn classify(code: i64) -> ErrorClass {
    match code {
        // Token expired or invalid; 0 is Meta's generic auth exception.
        0 | 190 => ErrorClass::RefreshToken,
        // Throttling and transient service failures.
        1 | 2 | 4 | 17 | 32 | 613 | 80_007 | 130_429 | 131_000 | 131_016 | 131_056 | 131_057 | 131_052 | 131_053
        | 132_068 | 132_069 | 133_016 => ErrorClass::Retryable,
        // Account-level blocks: stop sending from this number, alarm, keep messages queued.
        368 | 130_497 | 131_031 | 131_042 | 131_045 | 131_048 | 131_064 => ErrorClass::StopTheLine,
        // Everything else (parameters, recipients, templates, permissions, windows) is permanent.
        _ => ErrorClass::Permanent,
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
        for code in [368, 131_031, 131_048, 131_064, 130_497, 131_042] {
            assert_eq!(classify(code), ErrorClass::StopTheLine, "{code}");
        }
        for code in [100, 131_008, 131_009, 131_026, 131_047, 131_050, 131_051, 132_000, 132_001, 132_015, 10, 200] {
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
