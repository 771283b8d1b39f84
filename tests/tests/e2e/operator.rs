//! The operator commands' SQS paths (`wa send --queue-url`, `wa dlq list|redrive --queue-url`)
//! against moto's SQS.

use serde_json::json;
use wa_tests::fault_proxy::{FaultPlan, FaultProxy};
use wa_tests::{create_bucket, create_fifo_queue, create_queue, drain_queue, moto, moto_config, sdk_config};

fn request(key: &str) -> serde_json::Value {
    json!({"phone_number_id": "106540352242922", "to": "16505550177", "idempotency_key": key,
           "message": {"type": "text", "text": {"body": "a private text"}}})
}

#[tokio::test]
async fn wa_send_and_dlq_work_on_sqs() {
    let aws = moto_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let outbound = create_fifo_queue(&aws, 30).await;
    let dlq = create_fifo_queue(&aws, 30).await;

    // A send, then the same key again: SQS keeps one (deduplication id = the idempotency key).
    let said = wa_cli::produce::send_sqs(&sqs, &outbound, &request("op-1")).await.unwrap();
    assert!(said.contains("idempotency key op-1"), "{said}");
    wa_cli::produce::send_sqs(&sqs, &outbound, &request("op-1")).await.unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&outbound)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1);
    let group = received.messages()[0].attributes().unwrap()
        [&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
        .clone();
    assert_eq!(group, "106540352242922#16505550177");
    let receipt = received.messages()[0].receipt_handle().unwrap();
    sqs.delete_message().queue_url(&outbound).receipt_handle(receipt).send().await.unwrap();

    // Two dead letters: listed without their text or numbers, then moved back.
    for key in ["dead-1", "dead-2"] {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(request(key).to_string())
            .message_group_id("106540352242922#16505550177")
            .message_deduplication_id(key)
            .send()
            .await
            .unwrap();
    }
    let listing = wa_cli::dlq::dlq_list_sqs(&sqs, &dlq).await.unwrap();
    assert!(listing.contains("about 2 message(s)"), "{listing}");
    assert!(listing.contains("send request dead-1 (text, number 106540352242922, to …0177)"), "{listing}");
    assert!(!listing.contains("a private text") && !listing.contains("16505550177"), "{listing}");
    let s3 = wa_infra::aws::s3_client(&aws);
    let moved = wa_cli::dlq::dlq_redrive_sqs(&sqs, &s3, &dlq, &outbound).await.unwrap();
    assert!(moved.starts_with("2 message(s) moved"), "{moved}");
    let back = drain_queue(&aws, &outbound).await;
    assert_eq!(back.len(), 2);
    assert!(drain_queue(&aws, &dlq).await.is_empty());
    let err = wa_cli::dlq::dlq_list_sqs(&sqs, "http://127.0.0.1:1/000000000000/nope").await.unwrap_err();
    assert!(err.starts_with("cannot read"), "{err}");
}

#[tokio::test]
async fn wa_send_escapes_the_characters_sqs_refuses() {
    let aws = moto_config().await;
    let outbound = create_fifo_queue(&aws, 30).await;
    // The proxy refuses raw U+FFFE / U+FFFF as SQS does (moto takes anything).
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::None).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&proxy.endpoint).await);
    let mut odd = request("op-odd");
    odd["message"]["text"]["body"] = json!("odd \u{FFFF}\u{FFFE}");
    let refused = sqs
        .send_message()
        .queue_url(&outbound)
        .message_body(odd.to_string())
        .message_group_id("g")
        .message_deduplication_id("raw")
        .send()
        .await;
    assert!(refused.is_err(), "the proxy refuses the raw characters, as SQS does");
    wa_cli::produce::send_sqs(&sqs, &outbound, &odd).await.unwrap();
    let received = drain_queue(&aws, &outbound).await;
    assert_eq!(received.len(), 1);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&received[0]).unwrap(), odd, "the same request");
}

#[tokio::test]
async fn redriven_events_keep_their_claim_checked_payloads() {
    use wa_core::ports::BlobStore;
    let aws = moto_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let s3 = wa_infra::aws::s3_client(&aws);
    let (inbound, dlq, bucket) =
        (create_queue(&aws, 262_144).await, create_queue(&aws, 262_144).await, create_bucket(&aws).await);
    let blobs = wa_infra::s3::S3Blobs::new(s3.clone(), bucket.clone());
    // Two claim-checked events in the DLQ: one payload still there, one already expired.
    let mut pointers = Vec::new();
    for (i, keep) in [(0, true), (1, false)] {
        let event = json!({"version": 1, "event_id": format!("sha256:{i:064}"), "kind": "other", "field": "history",
                           "waba_id": "1", "phone_number_id": "106540352242922", "user_id": null, "timestamp": null,
                           "received_at": 1, "payload": {"n": i}})
        .to_string();
        let reference = wa_core::event::claim_check_ref(&bucket, &event);
        if keep {
            blobs.put(&reference.key, event.clone().into_bytes(), "application/json").await.unwrap();
        }
        let parsed: wa_core::event::InboundEvent<'_> = serde_json::from_str(&event).unwrap();
        let pointer = serde_json::to_string(&parsed.to_claim_check(reference.clone())).unwrap();
        sqs.send_message().queue_url(&dlq).message_body(&pointer).send().await.unwrap();
        pointers.push((reference.key, keep));
    }
    let kept = &pointers[0].0;
    let before = s3.head_object().bucket(&bucket).key(kept).send().await.unwrap().last_modified.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = wa_cli::dlq::dlq_redrive_sqs(&sqs, &s3, &dlq, &inbound).await.unwrap();
    assert!(report.starts_with("2 message(s) moved"), "{report}");
    assert!(
        report.contains(&format!(
            "1 of them refer to a claim-checked payload that is gone (expired), and will fail again: {}",
            pointers[1].0
        )),
        "{report}"
    );
    let after = s3.head_object().bucket(&bucket).key(kept).send().await.unwrap().last_modified.unwrap();
    assert!(after.secs() > before.secs(), "the payload's age starts again: {before:?} → {after:?}");
    let back = drain_queue(&aws, &inbound).await;
    assert_eq!(back.len(), 2);
    for body in &back {
        let resolved = wa_core::event::resolve_event(&blobs, body).await;
        if body.contains(kept.as_str()) {
            let event: serde_json::Value = serde_json::from_str(&resolved.unwrap()).unwrap();
            assert_eq!(event["payload"]["n"], 0, "the renewed object is the same event");
        } else {
            assert!(resolved.is_err(), "its payload is gone");
        }
    }
}
