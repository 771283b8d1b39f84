//! webhook → ingest → inbound queue → event processor → state table and events queue, on moto.

use serde_json::{Value, json};
use wa_core::conversation::OptOutKeywords;
use wa_core::signature::sign;
use wa_infra::dynamo::StateTable;
use wa_infra::s3::S3Blobs;
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_tests::{apigw_request, create_queue, create_state_table, drain_queue, esm};

use crate::stack::{APP_SECRET, Stack};

const PHONE: &str = "106540352242922";
const USER: &str = "16505551234";

fn webhook(value: Value, field: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": field, "value": value}]}]}))
    .unwrap()
}

fn message(id: &str, text: &str, at: i64) -> Vec<u8> {
    webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
               "contacts": [{"profile": {"name": "Sheena"}, "wa_id": USER}],
               "messages": [{"from": USER, "id": id, "timestamp": at.to_string(), "type": "text", "text": {"body": text}}]}),
        "messages",
    )
}

fn status(wamid: &str, status: &str, at: i64) -> Vec<u8> {
    webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "statuses": [{"id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": USER,
                             "biz_opaque_callback_data": "order-7",
                             "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"}}]}),
        "messages",
    )
}

struct Pipeline {
    stack: Stack,
    table: StateTable,
    events: String,
    processor: event_processor::Processor<StateTable, StateTable, SqsQueue, S3Blobs>,
}

impl Pipeline {
    async fn new() -> Self {
        let stack = Stack::new(262_144).await;
        let table_name = create_state_table(&stack.aws).await;
        let events = create_queue(&stack.aws, 262_144).await;
        let table = StateTable::new(aws_sdk_dynamodb::Client::new(&stack.aws), table_name);
        let processor = event_processor::Processor {
            dedupe: table.clone(),
            state: table.clone(),
            events: SqsQueue::new(&Sqs::new(&stack.aws).expect("SQS clients"), events.clone(), 262_144),
            blobs: S3Blobs::new(wa_infra::aws::s3_client(&stack.aws), stack.bucket.clone()),
            keywords: OptOutKeywords::default(),
        };
        Self { stack, table, events, processor }
    }

    async fn post(&self, body: &[u8]) {
        let deps = self.stack.ingest();
        let request = apigw_request(
            "POST",
            "",
            &[("x-hub-signature-256", &sign(APP_SECRET.as_bytes(), body))],
            Some(body),
            false,
        );
        assert_eq!(webhook_ingest::handle(&deps, &request).await.status(), 200);
    }

    /// Runs the processor over everything on the inbound queue, like the event source mapping.
    async fn process(&self, copies: usize) {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.aws);
        while let Some(batch) = esm::receive(&sqs, &self.stack.queue_url).await {
            let deadline = now_ms() + 30_000;
            let runs = (0..copies).map(|_| self.processor.handle(&batch.event, deadline));
            let responses = futures_util::future::join_all(runs).await;
            // Concurrent copies that lost a claim retry; the final delivery settles the batch.
            let response = self.processor.handle(&batch.event, deadline).await;
            assert!(response.batch_item_failures.is_empty(), "{responses:?} {response:?}");
            esm::settle(&sqs, &self.stack.queue_url, &batch, &response).await;
        }
    }

    async fn forwarded(&self) -> Vec<Value> {
        drain_queue(&self.stack.aws, &self.events).await.iter().map(|b| serde_json::from_str(b).unwrap()).collect()
    }
}

fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test]
async fn duplicate_storms_produce_one_downstream_event_each() {
    let p = Pipeline::new().await;
    let body = message("wamid.in1", "hello", 1_750_000_000);
    for _ in 0..3 {
        p.post(&body).await; // Meta redelivers
    }
    p.process(10).await; // and every delivery is seen by ten concurrent processors
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), 1, "{forwarded:#?}");
    assert_eq!(forwarded[0]["event_id"], "wamid.in1");
    // Days later, the same event again: still a duplicate.
    p.post(&body).await;
    p.process(1).await;
    assert!(p.forwarded().await.is_empty());
}

#[tokio::test]
async fn messages_statuses_and_preferences_become_conversation_state() {
    let p = Pipeline::new().await;
    let t0 = 1_750_000_000;
    p.post(&message("wamid.in1", "Hi, where is my order?", t0)).await;
    // Statuses of our reply, out of order, each with the same pricing.
    for (s, dt) in [("read", 30), ("sent", 10), ("delivered", 20)] {
        p.post(&status("wamid.out1", s, t0 + dt)).await;
    }
    p.post(&message("wamid.in2", "STOP", t0 + 100)).await;
    p.process(1).await;
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), 5);
    let schema = wa_tests::inbound_event_schema();
    for event in &forwarded {
        let mut plain = event.clone();
        let conversation = plain.as_object_mut().unwrap().remove("conversation").expect("enriched");
        assert!(schema.validate(&plain).is_ok(), "{plain}");
        assert!(conversation.get("marketing_opt_out").is_some());
    }
    let stop = forwarded.iter().find(|e| e["event_id"] == "wamid.in2").unwrap();
    assert_eq!(stop["conversation"]["marketing_opt_out"], true);
    assert_eq!(stop["payload"]["text"]["body"], "STOP");

    let (last_inbound, opted_out, name) = p.table.conversation(PHONE, USER).await.unwrap().unwrap();
    assert_eq!(last_inbound, Some(t0 + 100));
    assert!(opted_out, "STOP opts out of marketing");
    assert_eq!(name.as_deref(), Some("Sheena"));
    assert_eq!(p.table.message_status("wamid.out1").await.unwrap().as_deref(), Some("read"));
    let month = wa_core::conversation::month_of(t0);
    assert_eq!(p.table.costs(PHONE, &month).await.unwrap(), [("marketing#regular".to_owned(), 1)], "counted once");

    // A reply that opened a free entry point (click-to-WhatsApp ad): 72 hours, from its pricing.
    let now = i64::try_from(now_ms() / 1000).unwrap();
    let fep = webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "statuses": [{"id": "wamid.out2", "status": "sent", "timestamp": now.to_string(), "recipient_id": USER,
                             "pricing": {"billable": false, "pricing_model": "PMP", "category": "service", "type": "free_entry_point"}}]}),
        "messages",
    );
    p.post(&fep).await;
    p.process(1).await;
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded[0]["conversation"]["free_entry_point_until"], now + 72 * 3600);
    let facts = wa_core::ports::ConversationStore::facts(&p.table, PHONE, USER).await.unwrap().unwrap();
    assert_eq!(facts.free_entry_point_until, Some(now + 72 * 3600));

    // The user resumes marketing through Meta's preferences webhook.
    let resume = webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "user_preferences": [{"wa_id": USER, "detail": "User requested to resume marketing messages",
                                     "category": "marketing_messages", "value": "resume", "timestamp": t0 + 200}]}),
        "user_preferences",
    );
    p.post(&resume).await;
    p.process(1).await;
    assert!(!p.table.conversation(PHONE, USER).await.unwrap().unwrap().1, "resumed");

    // Template webhooks teach the sender which templates are marketing.
    let category = webhook(
        json!({"message_template_id": 12345, "message_template_name": "spring_sale", "message_template_language": "en_US",
               "previous_category": "UTILITY", "new_category": "MARKETING"}),
        "template_category_update",
    );
    p.post(&category).await;
    p.process(1).await;
    let learned = wa_core::ports::ConversationStore::template_category(&p.table, "spring_sale", "en_US").await.unwrap();
    assert_eq!(learned.as_deref(), Some("marketing"));

    // The operator's view. Statuses count the transitions applied (the queue delivers in any
    // order; a late sent or delivered after read is not applied), so read counts once.
    let card = wa_core::conversation::RateCard::parse("INR:marketing=0.8,utility=0.1").unwrap();
    let report = wa_cli::stats(&p.table, PHONE, Some(USER), &month, now, Some(&card)).await.unwrap();
    assert!(report.contains("estimated cost: INR 0.80"), "{report}");
    assert!(report.contains("read 1, played 0, failed 0"), "{report}");
    assert!(report.contains("billable messages: marketing/regular 1"), "{report}");
    assert!(report.contains("service window: closed (last message 2025-06-15T15:08:20Z)"), "{report}");
    assert!(report.contains("marketing: not opted out"), "{report}");
    let report = wa_cli::stats(&p.table, PHONE, Some("someone-else"), &month, now, None).await.unwrap();
    assert!(report.contains("never wrote to this number"), "{report}");
    assert!(report.contains("estimated cost: INR 0.86 (example India rate card"), "{report}");
    let report = wa_cli::message(&p.table, "wamid.out1").await.unwrap();
    assert!(report.contains("status: read at"), "{report}");
    assert!(report.contains("pricing: marketing/regular"), "{report}");
    assert!(report.contains("send request: not sent through this pipeline"), "{report}");
}
