//! The outcome event: every send request ends in exactly one, on the events queue.
//! Schema: `schemas/send-result.v1.json`.

use serde::{Deserialize, Serialize};

use crate::graph_error::ErrorClass;

/// Accepted by Meta, or failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Meta accepted the message (a wamid exists).
    Accepted,
    /// The request will not be sent.
    Failed,
    /// A free-form message outside the 24 h customer-service window, with no fallback: not sent.
    WindowClosed,
    /// A marketing message to a user who opted out of marketing: not sent.
    OptedOut,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeError {
    /// Meta's error code, when Meta refused it; `null` for our own checks.
    pub code: Option<i64>,
    /// The class (`permanent` for every failed outcome today).
    pub class: ErrorClass,
    /// A short reason: Meta's message, or the rule broken (`text.body.length: ...`).
    pub reason: String,
}

/// `kind: "send_result"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// Always 1.
    pub version: u32,
    /// Always `send_result`.
    pub kind: String,
    /// The request's idempotency key (given or derived).
    pub idempotency_key: String,
    /// The producer's correlation data, echoed.
    pub callback_data: Option<String>,
    /// The business number.
    pub phone_number_id: Option<String>,
    /// The recipient as given.
    pub to: Option<String>,
    /// Accepted or failed.
    pub status: OutcomeStatus,
    /// The wamid, when accepted.
    pub wamid: Option<String>,
    /// Meta's `message_status` (`accepted`, `held_for_quality_assessment`), when given.
    pub message_status: Option<String>,
    /// The fallback template was sent instead of the message.
    pub used_fallback: bool,
    /// Why it failed.
    pub error: Option<OutcomeError>,
    /// When the outcome was decided, Unix milliseconds.
    pub at: u64,
}

impl SendOutcome {
    /// An outcome with the request's identifiers and no result yet.
    #[must_use]
    pub fn new(
        idempotency_key: &str,
        callback_data: Option<&str>,
        phone_number_id: Option<&str>,
        to: Option<&str>,
        at: u64,
    ) -> Self {
        Self {
            version: 1,
            kind: "send_result".into(),
            idempotency_key: idempotency_key.to_owned(),
            callback_data: callback_data.map(str::to_owned),
            phone_number_id: phone_number_id.map(str::to_owned),
            to: to.map(str::to_owned),
            status: OutcomeStatus::Failed,
            wamid: None,
            message_status: None,
            used_fallback: false,
            error: None,
            at,
        }
    }

    /// Marks it accepted with the wamid.
    #[must_use]
    pub fn accepted(mut self, wamid: Option<String>, message_status: Option<String>) -> Self {
        self.status = OutcomeStatus::Accepted;
        self.wamid = wamid;
        self.message_status = message_status;
        self.error = None;
        self
    }

    /// Marks it refused by our conversation rules (no Graph call).
    #[must_use]
    pub fn refused(mut self, status: OutcomeStatus, reason: impl Into<String>) -> Self {
        self.status = status;
        self.error = Some(OutcomeError { code: None, class: ErrorClass::Permanent, reason: reason.into() });
        self
    }

    /// Marks it failed.
    #[must_use]
    pub fn failed(mut self, code: Option<i64>, class: ErrorClass, reason: impl Into<String>) -> Self {
        self.status = OutcomeStatus::Failed;
        self.error = Some(OutcomeError { code, class, reason: reason.into() });
        self
    }
}
