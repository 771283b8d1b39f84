//! [`EventQueue`] over Amazon EventBridge `PutEvents`: every event for consumers goes to the
//! pipeline's own bus ([`wa_core::fanout`]: source `whatsapp.pipeline`, detail type = the event's
//! kind, the filter fields and the event in `detail`), where each consumer's rule picks what it
//! wants; the events queue is one of those targets.
//!
//! Entries go in calls of at most 10 and 256 KB; entries EventBridge reports as failed are offered
//! again with backoff (4 attempts), except those it refuses as malformed or not allowed (a retry
//! cannot succeed); `Ok` only when EventBridge accepted every entry, so a caller that fails its
//! batch item on an error loses nothing.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use wa_core::fanout::{self, Entry};
use wa_core::ports::{EventQueue, QueueError, Redelivery, combine_calls};

use crate::aws::describe;
use crate::sqs::SqsQueue;

/// Most entries in one `PutEvents`.
pub const MAX_ENTRIES: usize = 10;
/// Most bytes of one `PutEvents` (its entries' sizes together), and so of one entry.
pub const MAX_REQUEST_BYTES: usize = 262_144;
/// Room kept for the filter fields, source and detail type around an event: an event body up to
/// `MAX_REQUEST_BYTES - ENVELOPE_BYTES` always fits (larger ones are claim-checked by the caller).
pub const ENVELOPE_BYTES: usize = 4_096;
/// Entry error codes that name the request itself: a retry fails the same way.
const REFUSED_CODES: &[&str] = &[
    "MalformedDetail",
    "InvalidArgument",
    "ValidationException",
    "AccessDeniedException",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
];

/// A publisher to one event bus (name or ARN).
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    max_attempts: u32,
}

impl EventBus {
    /// A publisher to `bus` with the region, endpoint and credentials of `config`.
    #[must_use]
    pub fn new(config: &SdkConfig, bus: impl Into<String>) -> Self {
        Self { client: aws_sdk_eventbridge::Client::new(config), bus: bus.into(), max_attempts: 4 }
    }

    /// How many times failed entries are offered before giving up (default 4).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The bus.
    #[must_use]
    pub fn bus(&self) -> &str {
        &self.bus
    }

    async fn put_batch(&self, batch: &[&Entry]) -> Result<(), QueueError> {
        let mut pending: Vec<&Entry> = batch.to_vec();
        let mut refused = 0;
        let mut last_reason = String::new();
        for attempt in 0..self.max_attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 * 4u64.pow(attempt - 1))).await;
            }
            let entries: Vec<PutEventsRequestEntry> = pending
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(fanout::SOURCE)
                        .detail_type(&e.detail_type)
                        .detail(&e.detail)
                        .build()
                })
                .collect();
            let answer = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Unavailable(format!("EventBridge PutEvents: {}", describe(&e))))?;
            if answer.failed_entry_count() == 0 && answer.entries().len() == pending.len() {
                pending.clear();
                break;
            }
            // The answer's entries are in the request's order; one without an event id failed (and
            // an answer shorter than the request leaves the rest unknown: offered again).
            let mut keep = Vec::new();
            let mut reasons = Vec::new();
            for (index, entry) in pending.iter().enumerate() {
                match answer.entries().get(index) {
                    Some(result) if result.event_id().is_some_and(|id| !id.is_empty()) => {}
                    Some(result) => {
                        let code = result.error_code().unwrap_or("Unknown");
                        reasons.push(code.to_owned());
                        if REFUSED_CODES.contains(&code) {
                            refused += 1;
                        } else {
                            keep.push(*entry);
                        }
                    }
                    None => {
                        reasons.push("NotInAnswer".to_owned());
                        keep.push(*entry);
                    }
                }
            }
            let failed = reasons.len();
            reasons.sort();
            reasons.dedup();
            last_reason = reasons.join(", ");
            tracing::warn!(
                attempt = attempt + 1,
                failed,
                retried = keep.len(),
                reason = %last_reason,
                "EventBridge entries failed"
            );
            pending = keep;
        }
        if pending.is_empty() && refused == 0 {
            return Ok(());
        }
        if refused > 0 {
            return Err(QueueError::Refused {
                failed: pending.len() + refused,
                total: batch.len(),
                reason: last_reason,
            });
        }
        Err(QueueError::Rejected {
            failed: pending.len(),
            total: batch.len(),
            attempts: self.max_attempts,
            reason: last_reason,
        })
    }
}

/// Groups entries into calls of at most 10 entries and 256 KB, keeping their order.
#[must_use]
pub fn batches(entries: &[Entry]) -> Vec<Vec<&Entry>> {
    let mut out: Vec<Vec<&Entry>> = Vec::new();
    let mut current: Vec<&Entry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        if !current.is_empty() && (current.len() == MAX_ENTRIES || bytes + entry.size() > MAX_REQUEST_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += entry.size();
        current.push(entry);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl EventQueue for EventBus {
    fn max_message_bytes(&self) -> usize {
        MAX_REQUEST_BYTES - ENVELOPE_BYTES
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        let entries: Vec<Entry> = bodies.iter().map(|b| fanout::entry(b)).collect();
        if let Some(big) = entries.iter().find(|e| e.size() > MAX_REQUEST_BYTES) {
            return Err(QueueError::TooLarge { size: big.size(), limit: MAX_REQUEST_BYTES });
        }
        // Every call is attempted, even when one fails, so that a partial outage costs only the
        // failed part on the redelivery (the rest is deduplicated downstream).
        let groups = batches(&entries);
        let results = futures_util::future::join_all(groups.iter().map(|g| self.put_batch(g))).await;
        combine_calls(groups.iter().map(Vec::len).zip(results), bodies.len(), self.max_attempts)
    }
}

/// Where a function publishes events for consumers: the pipeline's bus (`EVENT_BUS_NAME`, what the
/// stack deploys: the events queue is one of its targets), or the events queue directly (a stack
/// without a bus, and the local stack).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "built once per process; never moved on a hot path")]
pub enum Events {
    /// The bus.
    Bus(EventBus),
    /// The queue.
    Queue(SqsQueue),
    /// The events queue, with the events the fallback function wants
    /// ([`wa_core::fallback::wants`]) also on its queue: a stack without a bus routes as the bus's
    /// `FallbackRule` would.
    Routed {
        /// Every event.
        events: SqsQueue,
        /// The fallback function's queue.
        fallback: SqsQueue,
    },
}

/// The environment variable naming the pipeline's bus.
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// The environment variable naming the events queue.
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
/// The environment variable naming the fallback function's queue, for a stack without a bus.
pub const FALLBACK_QUEUE_URL: &str = "FALLBACK_QUEUE_URL";

/// Which of `bodies` the fallback function wants.
fn wanted_by_fallback(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .filter(|body| {
            serde_json::from_str::<serde_json::Value>(body)
                .is_ok_and(|event| wa_core::fallback::wants(&wa_core::fanout::fields(&event)))
        })
        .cloned()
        .collect()
}

impl Events {
    /// The bus when one is given (not empty), else the events queue (and, when a fallback queue
    /// is given, that queue for the events the fallback function wants); an error naming both
    /// when neither is.
    pub fn new(config: &SdkConfig, sqs: &crate::sqs::Sqs, to: &crate::config::EventsConfig) -> Result<Self, String> {
        fn set(v: Option<&String>) -> Option<&str> {
            v.map(|v| v.trim()).filter(|v| !v.is_empty())
        }
        let queue = |url: &str| SqsQueue::new(sqs, url, crate::sqs::DEFAULT_MAX_MESSAGE_BYTES);
        match (set(to.bus.as_ref()), set(to.queue.as_ref()), set(to.fallback.as_ref())) {
            (Some(bus), _, _) => Ok(Self::Bus(EventBus::new(config, bus))),
            (None, Some(url), None) => Ok(Self::Queue(queue(url))),
            (None, Some(url), Some(fallback)) => Ok(Self::Routed { events: queue(url), fallback: queue(fallback) }),
            (None, None, _) => Err(format!(
                "set {EVENT_BUS_NAME} (the pipeline's EventBridge bus) or {EVENTS_QUEUE_URL} (the events SQS queue)"
            )),
        }
    }
}

/// The sender's redelivery queue is always [`Events::Queue`] (the outbound queue); a bus has no
/// visibility to change, so asking one is an error (the visibility timeout then applies).
impl Redelivery for Events {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        match self {
            Self::Queue(queue) | Self::Routed { events: queue, .. } => queue.delay(receipt_handle, seconds).await,
            Self::Bus(bus) => Err(QueueError::Unavailable(format!("the bus {} cannot delay a message", bus.bus()))),
        }
    }
}

impl EventQueue for Events {
    fn max_message_bytes(&self) -> usize {
        match self {
            Self::Bus(bus) => bus.max_message_bytes(),
            Self::Queue(queue) | Self::Routed { events: queue, .. } => queue.max_message_bytes(),
        }
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        match self {
            Self::Bus(bus) => bus.publish(bodies).await,
            Self::Queue(queue) => queue.publish(bodies).await,
            Self::Routed { events, fallback } => {
                events.publish(bodies).await?;
                fallback.publish(&wanted_by_fallback(bodies)).await
            }
        }
    }

    /// A group is published when each of its events is on the events queue and each the fallback
    /// function wants is on its queue too.
    async fn publish_groups(&self, groups: &[Vec<String>]) -> Vec<Result<(), QueueError>> {
        match self {
            Self::Bus(bus) => bus.publish_groups(groups).await,
            Self::Queue(queue) => queue.publish_groups(groups).await,
            Self::Routed { events, fallback } => {
                let wanted: Vec<Vec<String>> = groups.iter().map(|group| wanted_by_fallback(group)).collect();
                let (mut results, routed) =
                    futures_util::future::join(events.publish_groups(groups), fallback.publish_groups(&wanted)).await;
                for (result, routed) in results.iter_mut().zip(routed) {
                    if result.is_ok() {
                        *result = routed;
                    }
                }
                results
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<Entry> =
            (0..25).map(|i| fanout::entry(&format!("{{\"kind\":\"message\",\"n\":{i}}}"))).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<Entry> = (0..5)
            .map(|_| fanout::entry(&format!("{{\"kind\":\"message\",\"x\":\"{}\"}}", "x".repeat(100_000))))
            .collect();
        let sizes: Vec<usize> = batches(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(batches(&big).iter().all(|b| b.iter().map(|e| e.size()).sum::<usize>() <= MAX_REQUEST_BYTES));
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn a_body_at_the_advertised_limit_fits_one_entry() {
        let body = |filler: usize| {
            format!(
                "{{\"kind\":\"status\",\"phone_number_id\":\"{}\",\"payload\":{{\"status\":\"{}\",\"pricing\":{{\"category\":\"{}\"}},\"biz_opaque_callback_data\":{}}},\"x\":\"{}\"}}",
                "1".repeat(fanout::MAX_FIELD),
                "s".repeat(fanout::MAX_FIELD),
                "c".repeat(fanout::MAX_FIELD),
                serde_json::Value::from(format!(
                    "{{\"campaign\":\"{}\",\"variant\":\"{}\"}}",
                    "a".repeat(200),
                    "b".repeat(200)
                )),
                "x".repeat(filler),
            )
        };
        let limit = MAX_REQUEST_BYTES - ENVELOPE_BYTES;
        let largest = body(limit - body(0).len());
        assert_eq!(largest.len(), limit);
        let entry = fanout::entry(&largest);
        assert!(entry.size() <= MAX_REQUEST_BYTES, "{} > {MAX_REQUEST_BYTES}", entry.size());
        assert!(entry.detail.contains("\"campaign\":\"aaa"), "every field lifted");
    }
}
