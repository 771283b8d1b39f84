//! [`EventQueue`] over SQS `SendMessageBatch`: chunks of at most 10 messages and 1 MiB, entries
//! that failed are retried with backoff (but for those SQS calls the sender's fault, which cannot
//! succeed), and `Ok` only when SQS accepted every message. Bodies are JSON; the two characters
//! JSON may hold raw and SQS refuses are sent escaped ([`sqs_safe`]).

use std::borrow::Cow;
use std::time::Duration;

use aws_config::SdkConfig;
use futures_util::{StreamExt, stream};
use wa_core::ports::{EventQueue, QueueError, Redelivery, combine_calls};
use wa_core::queue_text::sqs_safe;

use crate::aws::describe;
use crate::sqs_batch::BatchClient;

/// Most entries SQS takes in one batch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes SQS takes in one batch (sum of bodies), and in one message at most.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// A standard queue's default `MaximumMessageSize` (256 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// The SQS clients of a process, built once and shared by its queues: [`BatchClient`] sends, the
/// SDK's client does the rest (visibility changes).
#[derive(Debug, Clone)]
pub struct Sqs {
    /// The SDK's client.
    pub sdk: aws_sdk_sqs::Client,
    /// The `SendMessageBatch` client.
    pub batch: BatchClient,
}

impl Sqs {
    /// Both clients, for the region, endpoint and credentials of `config`.
    pub fn new(config: &SdkConfig) -> Result<Self, String> {
        Ok(Self { sdk: aws_sdk_sqs::Client::new(config), batch: BatchClient::new(config)? })
    }
}

/// A queue publisher.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    sqs: Sqs,
    queue_url: String,
    max_message_bytes: usize,
    max_attempts: u32,
    concurrency: usize,
}

impl SqsQueue {
    /// A publisher for `queue_url`, whose `MaximumMessageSize` is `max_message_bytes`.
    #[must_use]
    pub fn new(sqs: &Sqs, queue_url: impl Into<String>, max_message_bytes: usize) -> Self {
        Self {
            sqs: sqs.clone(),
            queue_url: queue_url.into(),
            max_message_bytes: max_message_bytes.min(MAX_BATCH_BYTES),
            max_attempts: 4,
            concurrency: 8,
        }
    }

    /// How many times failed entries are offered before giving up (default 4).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The queue URL.
    #[must_use]
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    async fn send_batch(&self, batch: &[(usize, &String)]) -> Result<(), QueueError> {
        self.send_entries(batch).await.map_err(|(_, error)| error)
    }

    /// One `SendMessageBatch` with its retries; on failure, the indexes of the entries SQS did not
    /// accept (all of them when the call itself failed) and why.
    async fn send_entries(&self, batch: &[(usize, &String)]) -> Result<(), (Vec<usize>, QueueError)> {
        let mut pending: Vec<(usize, &String)> = batch.to_vec();
        // Entries SQS failed as the sender's fault (invalid contents or attributes): a retry
        // cannot succeed, so they are not offered again.
        let mut refused = Vec::new();
        let mut last_reason = String::new();
        for attempt in 0..self.max_attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 * 4u64.pow(attempt - 1))).await;
            }
            let ids: Vec<String> = pending.iter().map(|(index, _)| format!("m{index}")).collect();
            let entries: Vec<(&str, &str)> =
                ids.iter().zip(&pending).map(|(id, (_, body))| (id.as_str(), body.as_str())).collect();
            let failed = self.sqs.batch.send_message_batch(&self.queue_url, &entries).await.map_err(|e| {
                (pending.iter().map(|(index, _)| *index).collect(), QueueError::Unavailable(e.to_string()))
            })?;
            if failed.is_empty() {
                pending.clear();
                break;
            }
            last_reason = failed
                .iter()
                .map(|f| format!("{}{}", f.code, if f.sender_fault { " (sender fault)" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ");
            let retried = failed.iter().filter(|f| !f.sender_fault).count();
            tracing::warn!(attempt = attempt + 1, failed = failed.len(), retried, reason = %last_reason, "sqs entries failed");
            refused.extend(
                ids.iter()
                    .zip(&pending)
                    .filter(|(id, _)| failed.iter().any(|f| &f.id == *id && f.sender_fault))
                    .map(|(_, (index, _))| *index),
            );
            let mut keep = ids.iter().map(|id| failed.iter().any(|f| &f.id == id && !f.sender_fault));
            pending.retain(|_| keep.next().unwrap_or(true));
        }
        if pending.is_empty() && refused.is_empty() {
            return Ok(());
        }
        let failed = pending.len() + refused.len();
        let refusal = !refused.is_empty();
        let mut indexes = refused;
        indexes.extend(pending.iter().map(|(index, _)| *index));
        if refusal {
            return Err((indexes, QueueError::Refused { failed, total: batch.len(), reason: last_reason }));
        }
        let error =
            QueueError::Rejected { failed, total: batch.len(), attempts: self.max_attempts, reason: last_reason };
        Err((indexes, error))
    }
}

impl Redelivery for SqsQueue {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        self.sqs
            .sdk
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds.min(43_200)).unwrap_or(43_200))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Unavailable(describe(&e)))
    }
}

/// Groups bodies into batches of at most 10 entries and 1 MiB, keeping their order.
#[must_use]
pub fn batches(bodies: &[String]) -> Vec<Vec<(usize, &String)>> {
    let mut out: Vec<Vec<(usize, &String)>> = Vec::new();
    let mut current: Vec<(usize, &String)> = Vec::new();
    let mut bytes = 0;
    for (index, body) in bodies.iter().enumerate() {
        if !current.is_empty() && (current.len() == MAX_BATCH_ENTRIES || bytes + body.len() > MAX_BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += body.len();
        current.push((index, body));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl EventQueue for SqsQueue {
    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        // Characters SQS refuses (U+FFFE, U+FFFF) are sent as JSON escapes (`wa_core::queue_text`).
        let escaped: Option<Vec<String>> = bodies
            .iter()
            .any(|b| matches!(sqs_safe(b), Cow::Owned(_)))
            .then(|| bodies.iter().map(|b| sqs_safe(b).into_owned()).collect());
        let bodies = escaped.as_deref().unwrap_or(bodies);
        if let Some(big) = bodies.iter().find(|b| b.len() > self.max_message_bytes) {
            return Err(QueueError::TooLarge { size: big.len(), limit: self.max_message_bytes });
        }
        let groups = batches(bodies);
        if groups.len() == 1 {
            return self.send_batch(&groups[0]).await;
        }
        // Every batch is attempted, even when one fails, so that a partial outage costs only the
        // failed part on Meta's redelivery (the rest is deduplicated downstream).
        let sends: Vec<_> = groups.iter().map(|group| self.send_batch(group)).collect();
        let results: Vec<Result<(), QueueError>> = stream::iter(sends).buffered(self.concurrency).collect().await;
        combine_calls(groups.iter().map(Vec::len).zip(results), bodies.len(), self.max_attempts)
    }

    /// All groups' bodies in as few `SendMessageBatch` calls as they fit (ten a call, whoever they
    /// belong to); a group fails only for its own bodies SQS did not accept.
    async fn publish_groups(&self, groups: &[Vec<String>]) -> Vec<Result<(), QueueError>> {
        let mut owners = Vec::new();
        let mut bodies = Vec::new();
        let mut results: Vec<Result<(), QueueError>> = groups.iter().map(|_| Ok(())).collect();
        for (owner, group) in groups.iter().enumerate() {
            for body in group {
                let body = sqs_safe(body).into_owned();
                if body.len() > self.max_message_bytes {
                    results[owner] = Err(QueueError::TooLarge { size: body.len(), limit: self.max_message_bytes });
                } else {
                    owners.push(owner);
                    bodies.push(body);
                }
            }
        }
        let calls = batches(&bodies);
        let sends: Vec<_> = calls.iter().map(|call| self.send_entries(call)).collect();
        let answers: Vec<_> = stream::iter(sends).buffered(self.concurrency).collect().await;
        // Per group: how many of its bodies were not accepted, and the first call's error.
        let errors: Vec<(Vec<usize>, QueueError)> = answers.into_iter().filter_map(Result::err).collect();
        let mut failures: Vec<(usize, Option<&QueueError>)> = vec![(0, None); groups.len()];
        for (indexes, error) in &errors {
            for index in indexes {
                let (failed, first) = &mut failures[owners[*index]];
                *failed += 1;
                first.get_or_insert(error);
            }
        }
        for ((result, (failed, error)), group) in results.iter_mut().zip(failures).zip(groups) {
            let (Ok(()), Some(error)) = (&*result, error) else { continue };
            let total = group.len();
            *result = Err(match error {
                QueueError::Refused { reason, .. } => QueueError::Refused { failed, total, reason: reason.clone() },
                QueueError::Unavailable(reason) => QueueError::Unavailable(reason.clone()),
                other => QueueError::Rejected { failed, total, attempts: self.max_attempts, reason: other.to_string() },
            });
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<String> = (0..25).map(|i| format!("{i}")).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<String> = (0..5).map(|_| "x".repeat(400_000)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let order: Vec<usize> = batches(&small).into_iter().flatten().map(|(i, _)| i).collect();
        assert_eq!(order, (0..25).collect::<Vec<_>>());
        assert!(batches(&[]).is_empty());
    }
}
