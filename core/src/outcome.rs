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
    /// An `at_most_once` request whose send may or may not have reached Meta (a timeout or 5xx
    /// after sending, or an attempt that crashed): not retried, so never sent twice.
    Unknown,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeError {
    /// Meta's error code, when Meta refused it; `null` for our own checks.
    pub code: Option<i64>,
    /// The class (permanent, or retryable for a delivery failure Meta calls transient).
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

    /// Marks it unknown: an at-most-once request whose send may have reached Meta.
    #[must_use]
    pub fn unknown(mut self, reason: impl Into<String>) -> Self {
        self.status = OutcomeStatus::Unknown;
        self.error = Some(OutcomeError { code: None, class: ErrorClass::Retryable, reason: reason.into() });
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

/// `kind: "delivery_failure"`: Meta accepted a request's message, then a `failed` status said it
/// was not delivered. Exactly one per failed message on the events queue (the status event's
/// dedupe makes it so), for fallbacks and CRMs. Schema: `schemas/delivery-failure.v1.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailure {
    /// Always 1.
    pub version: u32,
    /// Always `delivery_failure`.
    pub kind: String,
    /// The request's idempotency key; `null` when the message was not sent through this pipeline
    /// (or its send record expired).
    pub idempotency_key: Option<String>,
    /// The producer's correlation data (`biz_opaque_callback_data`), echoed.
    pub callback_data: Option<String>,
    /// The business number.
    pub phone_number_id: Option<String>,
    /// The recipient as the status names it (BSUID when given, else the phone number).
    pub recipient: Option<String>,
    /// The wamid of the message that failed.
    pub wamid: String,
    /// Meta's error, classified by the taxonomy synchronous errors use.
    pub error: OutcomeError,
    /// When Meta says it failed, Unix seconds.
    pub failed_at: Option<i64>,
    /// When the processor decided it, Unix milliseconds.
    pub at: u64,
}

/// The parts of a failed status a [`DeliveryFailure`] is made of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedStatus<'a> {
    /// The wamid.
    pub wamid: &'a str,
    /// The business number.
    pub phone_number_id: Option<&'a str>,
    /// The recipient.
    pub recipient: Option<&'a str>,
    /// `biz_opaque_callback_data`.
    pub callback_data: Option<&'a str>,
    /// The first error's code (Meta always gives one; 0 when it did not).
    pub code: Option<i64>,
    /// The first error's message or title.
    pub message: Option<&'a str>,
    /// The status's time.
    pub at: Option<i64>,
}

impl DeliveryFailure {
    /// The delivery failure of `status`, for the request `idempotency_key` (when known), decided
    /// at `now_ms`.
    #[must_use]
    pub fn new(status: &FailedStatus<'_>, idempotency_key: Option<String>, now_ms: u64) -> Self {
        let code = status.code;
        let class = code.map_or(ErrorClass::Permanent, crate::graph_error::classify);
        let reason = status
            .message
            .filter(|m| !m.is_empty())
            .map_or_else(|| crate::graph_error::meaning(code.unwrap_or(0)).to_owned(), str::to_owned);
        Self {
            version: 1,
            kind: "delivery_failure".into(),
            idempotency_key,
            callback_data: status.callback_data.map(str::to_owned),
            phone_number_id: status.phone_number_id.map(str::to_owned),
            recipient: status.recipient.map(str::to_owned),
            wamid: status.wamid.to_owned(),
            error: OutcomeError { code, class, reason },
            failed_at: status.at,
            at: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_failure_is_classified_like_a_send_error() {
        let status = FailedStatus {
            wamid: "wamid.X",
            phone_number_id: Some("106540352242922"),
            recipient: Some("US.1"),
            callback_data: Some("order-7"),
            code: Some(131_049),
            message: None,
            at: Some(1_750_000_000),
        };
        let failure = DeliveryFailure::new(&status, Some("order-7-confirmation".into()), 5);
        assert_eq!(failure.kind, "delivery_failure");
        assert_eq!(failure.error.class, ErrorClass::Permanent);
        assert!(failure.error.reason.contains("ecosystem"), "{}", failure.error.reason);
        let json = serde_json::to_value(&failure).unwrap();
        assert_eq!(json["idempotency_key"], "order-7-confirmation");
        assert_eq!(json["error"]["class"], "permanent");
        let maintenance = DeliveryFailure::new(&FailedStatus { code: Some(131_057), ..status }, None, 5);
        assert_eq!(maintenance.error.class, ErrorClass::Retryable);
        assert!(maintenance.idempotency_key.is_none());
    }
}
