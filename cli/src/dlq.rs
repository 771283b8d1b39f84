//! `wa dlq list|redrive`: dead-letter queues, local or on SQS. Listings show each message's kind,
//! ids and age — never its text or phone numbers.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use wa_core::event::{InboundEvent, PayloadRef};
use wa_core::ports::{BlobError, BlobStore};
use wa_infra::s3::S3Blobs;

use crate::dev;

/// One line describing a queued message without its content.
#[must_use]
pub fn summary(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return format!("not JSON ({} bytes)", body.len());
    };
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(kind) = value.get("kind").and_then(Value::as_str) {
        return format!("{kind} event {} (number {})", text("event_id"), text("phone_number_id"));
    }
    if value.get("message").is_some() {
        let kind = value["message"]["type"].as_str().unwrap_or("?");
        return format!(
            "send request {} ({kind}, number {}, to {})",
            text("idempotency_key"),
            text("phone_number_id"),
            dev::mask(&text("to"))
        );
    }
    format!("JSON ({} bytes)", body.len())
}

fn local_dlq(
    queue: &str,
    data_dir: &Path,
) -> Result<(wa_infra_local::LocalDb, dev::Queues, wa_infra_local::LocalQueue), String> {
    let db = dev::open(data_dir)?;
    let queues = dev::Queues::of(&db);
    let source = queues.by_name(queue).filter(|q| !q.name().ends_with("-dlq")).ok_or_else(|| {
        format!("no local queue {queue:?}: use {}, {} or {}", dev::INBOUND, dev::OUTBOUND, dev::EVENTS)
    })?;
    let dlq = source.dlq();
    Ok((db, queues, dlq))
}

/// Lists a dead-letter queue.
pub async fn dlq_list(queue: &str, queue_url: Option<&str>, data_dir: &Path) -> Result<String, String> {
    let mut out = String::new();
    match queue_url {
        None => {
            let (_, _, dlq) = local_dlq(queue, data_dir)?;
            let messages = dlq.peek(0, 1000).map_err(|e| e.to_string())?;
            let now = wa_infra::telemetry::now_millis();
            let _ = writeln!(out, "{}: {} message(s)", dlq.name(), messages.len());
            for (id, body, sent_at) in messages {
                let age = now.saturating_sub(u64::try_from(sent_at).unwrap_or(0)) / 1000;
                let _ = writeln!(out, "  #{id} {age}s old: {}", summary(&body));
            }
        }
        Some(url) => {
            let sqs = aws_sdk_sqs::Client::new(&wa_infra::aws::load().await);
            out = dlq_list_sqs(&sqs, url).await?;
        }
    }
    Ok(out)
}

/// Moves a dead-letter queue's messages back to their source queue.
pub async fn dlq_redrive(queue: &str, urls: Option<(&str, &str)>, data_dir: &Path) -> Result<String, String> {
    match urls {
        None => {
            let (db, queues, dlq) = local_dlq(queue, data_dir)?;
            let source = queues.by_name(queue).ok_or("no such queue")?;
            let blobs = wa_infra_local::LocalBlobs::new(&db);
            let mut gone = Vec::new();
            let mut after = 0;
            loop {
                let page = dlq.peek(after, 1000).map_err(|e| e.to_string())?;
                let Some((last, _, _)) = page.last() else { break };
                after = *last;
                for reference in page.iter().filter_map(|(_, body, _)| payload_ref(body)) {
                    renew_payload(&blobs, &reference.key, &mut gone).await?;
                }
            }
            let moved = dlq.move_all(&source).map_err(|e| e.to_string())?;
            Ok(format!("{moved} message(s) moved from {} back to {}\n{}", dlq.name(), source.name(), gone_note(&gone)))
        }
        Some((from, to)) => {
            let sdk = wa_infra::aws::load().await;
            dlq_redrive_sqs(&aws_sdk_sqs::Client::new(&sdk), &wa_infra::aws::s3_client(&sdk), from, to).await
        }
    }
}

/// The claim-checked payload a queued event refers to, if it is one.
fn payload_ref(body: &str) -> Option<PayloadRef> {
    serde_json::from_str::<InboundEvent<'_>>(body).ok()?.payload_ref
}

/// A redriven event's claim-checked payload must outlive the new message, whose retention starts
/// again: its lifecycle clock is restarted. A payload already gone is noted in `gone` (the event
/// can only fail again); a store that cannot be reached stops the redrive, before this message.
async fn renew_payload<B: BlobStore>(blobs: &B, key: &str, gone: &mut Vec<String>) -> Result<(), String> {
    match blobs.renew(key).await {
        Ok(()) => Ok(()),
        Err(BlobError::NotFound(key)) => {
            gone.push(key);
            Ok(())
        }
        Err(error) => Err(format!("cannot renew the claim-checked payload {key}: {error}")),
    }
}

fn gone_note(gone: &[String]) -> String {
    if gone.is_empty() {
        return String::new();
    }
    format!(
        "{} of them refer to a claim-checked payload that is gone (expired), and will fail again: {}\n",
        gone.len(),
        gone.join(", ")
    )
}

/// Lists the first messages of an SQS dead-letter queue without taking them.
pub async fn dlq_list_sqs(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    let mut out = String::new();
    // A look without taking: received with a zero visibility timeout.
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(|e| format!("cannot read {url}: {}", wa_infra::aws::describe(&e)))?;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| format!("cannot read {url}: {}", wa_infra::aws::describe(&e)))?;
    let total = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned()
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "{url}: about {total} message(s); the first ones:");
    for message in received.messages() {
        let _ =
            writeln!(out, "  {}: {}", message.message_id().unwrap_or("?"), summary(message.body().unwrap_or_default()));
    }
    Ok(out)
}

/// Moves every message of an SQS dead-letter queue to `to`; each is deleted only after its copy
/// was accepted.
pub async fn dlq_redrive_sqs(
    sqs: &aws_sdk_sqs::Client,
    s3: &aws_sdk_s3::Client,
    from: &str,
    to: &str,
) -> Result<String, String> {
    let fifo = to.ends_with(".fifo");
    let mut moved = 0usize;
    let mut gone = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| format!("cannot read {from}: {}", wa_infra::aws::describe(&e)))?;
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            let body = message.body().unwrap_or_default();
            if let Some(reference) = payload_ref(body) {
                renew_payload(&S3Blobs::new(s3.clone(), reference.bucket), &reference.key, &mut gone).await?;
            }
            let mut send = sqs.send_message().queue_url(to).message_body(body);
            if fifo {
                let group = message
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap_or_else(|| "redrive".into());
                send = send
                    .message_group_id(group)
                    .message_deduplication_id(format!("redrive-{}", message.message_id().unwrap_or("?")));
            }
            send.send().await.map_err(|e| format!("cannot send to {to}: {}", wa_infra::aws::describe(&e)))?;
            if let Some(receipt) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(from)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| format!("cannot delete from {from}: {}", wa_infra::aws::describe(&e)))?;
            }
            moved += 1;
        }
    }
    Ok(format!("{moved} message(s) moved from {from} back to {to}\n{}", gone_note(&gone)))
}
