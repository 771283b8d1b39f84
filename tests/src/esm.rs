//! A small Lambda event-source-mapping emulator for SQS (moto emulates the queue, not the mapping):
//! receive up to 10 messages, build the `SqsEvent` Lambda would deliver, invoke the handler, delete
//! the messages that are not reported in `batchItemFailures` (which then reappear after their
//! visibility timeout). It checks the response the way Lambda does: an empty or unknown item
//! identifier fails the whole batch.

use std::collections::HashSet;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;

/// One received batch: the event and the receipt handles by message id.
pub struct Batch {
    /// What the handler receives.
    pub event: SqsEvent,
    receipts: Vec<(String, String)>,
}

/// Receives one batch (up to 10); `None` when nothing is visible.
pub async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Option<Batch> {
    try_receive(sqs, queue_url).await.expect("receive")
}

/// [`receive`], with SQS's errors returned (the fault runs retry them).
pub async fn try_receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Option<Batch>, String> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(None);
    }
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    let mut receipts = Vec::new();
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::from(v)))
                .collect();
            receipts.push((m.message_id.clone().unwrap_or_default(), m.receipt_handle.clone().unwrap_or_default()));
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records })).expect("a valid SQS event");
    Ok(Some(Batch { event, receipts }))
}

/// Applies the handler's response like Lambda: deletes every message not reported failed.
/// Panics when the response would fail the whole batch (empty or unknown identifiers).
pub async fn settle(sqs: &aws_sdk_sqs::Client, queue_url: &str, batch: &Batch, response: &SqsBatchResponse) {
    try_settle(sqs, queue_url, batch, response).await.expect("delete batch");
}

/// [`settle`], with SQS's errors returned (the fault runs retry them; an undeleted message comes
/// back after its visibility timeout, as with Lambda).
pub async fn try_settle(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &Batch,
    response: &SqsBatchResponse,
) -> Result<(), String> {
    let ids: HashSet<&str> = batch.receipts.iter().map(|(id, _)| id.as_str()).collect();
    let mut failed = HashSet::new();
    for failure in &response.batch_item_failures {
        assert!(!failure.item_identifier.is_empty(), "empty itemIdentifier fails the whole batch");
        assert!(ids.contains(failure.item_identifier.as_str()), "unknown itemIdentifier fails the whole batch");
        failed.insert(failure.item_identifier.as_str());
    }
    // Like the event source mapping: one DeleteMessageBatch for the successes.
    let entries: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = batch
        .receipts
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| !failed.contains(id.as_str()))
        .map(|(i, (_, receipt))| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(receipt)
                .build()
                .unwrap()
        })
        .collect();
    if !entries.is_empty() {
        let out = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        assert!(out.failed.is_empty(), "delete failed: {:?}", out.failed);
    }
    Ok(())
}

/// How many messages are still in the queue (visible or in flight).
pub async fn remaining(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes");
    out.attributes.unwrap_or_default().values().map(|v| v.parse::<usize>().unwrap_or(0)).sum()
}
