//! webhook → ingest → inbound queue → event processor → state table and events queue, on moto.

use serde_json::{Value, json};
use wa_core::conversation::OptOutKeywords;
use wa_core::signature::sign;
use wa_infra::dynamo::StateTable;
use wa_infra::eventbridge::Events;
use wa_infra::s3::S3Blobs;
use wa_infra::sqs::{DEFAULT_MAX_MESSAGE_BYTES, Sqs, SqsQueue};
use wa_tests::{apigw_request, create_queue, create_state_table, drain_queue, esm};

use crate::stack::{APP_SECRET, Stack};

const PHONE: &str = "106540352242922";
const USER: &str = "16505551234";

pub(crate) fn webhook(value: Value, field: &str) -> Vec<u8> {
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

/// Ingest and the event processor on moto, over one state table.
pub(crate) struct Pipeline {
    pub(crate) stack: Stack,
    pub(crate) table: StateTable,
    /// The state table's name (a sender on the same table sees what the processor recorded).
    pub(crate) table_name: String,
    pub(crate) events: String,
    pub(crate) processor: event_processor::Processor<StateTable, StateTable, Events, S3Blobs>,
    /// The media queue's URL, when media messages go to the media fetcher.
    pub(crate) media: Option<String>,
}

impl Pipeline {
    pub(crate) async fn new() -> Self {
        Self::with_queues_of(262_144).await
    }

    /// With an inbound queue taking messages of up to `inbound_max_bytes`; the events queue takes
    /// 256 KiB, as the function's publisher assumes (`DEFAULT_MAX_MESSAGE_BYTES`).
    async fn with_queues_of(inbound_max_bytes: usize) -> Self {
        let stack = Stack::new(inbound_max_bytes).await;
        let table_name = create_state_table(&stack.aws).await;
        let events = create_queue(&stack.aws, 262_144).await;
        let table = StateTable::new(aws_sdk_dynamodb::Client::new(&stack.aws), table_name.clone());
        let processor = event_processor::Processor {
            dedupe: table.clone(),
            state: table.clone(),
            events: Events::Queue(SqsQueue::new(
                &Sqs::new(&stack.aws).expect("SQS clients"),
                events.clone(),
                DEFAULT_MAX_MESSAGE_BYTES,
            )),
            blobs: S3Blobs::new(wa_infra::aws::s3_client(&stack.aws), stack.bucket.clone()),
            keywords: OptOutKeywords::default(),
            portfolios: Default::default(),
            numbers_seen: Default::default(),
            media: None,
        };
        Self { stack, table, table_name, events, processor, media: None }
    }

    /// With a media queue: media messages go to it (for the media fetcher) instead of the events
    /// queue.
    pub(crate) async fn with_media() -> Self {
        let mut pipeline = Self::new().await;
        let media = create_queue(&pipeline.stack.aws, 262_144).await;
        pipeline.processor.media = Some(Events::Queue(SqsQueue::new(
            &Sqs::new(&pipeline.stack.aws).expect("SQS clients"),
            media.clone(),
            DEFAULT_MAX_MESSAGE_BYTES,
        )));
        pipeline.media = Some(media);
        pipeline
    }

    pub(crate) async fn post(&self, body: &[u8]) {
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
    pub(crate) async fn process(&self, copies: usize) {
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

    /// A processor on the same table and bucket whose events queue is reached through `endpoint`
    /// (a fault proxy).
    async fn processor_via(
        &self,
        endpoint: &str,
    ) -> event_processor::Processor<StateTable, StateTable, SqsQueue, S3Blobs> {
        let via = wa_tests::sdk_config(endpoint).await;
        event_processor::Processor {
            dedupe: self.table.clone(),
            state: self.table.clone(),
            events: SqsQueue::new(&Sqs::new(&via).expect("SQS clients"), self.events.clone(), 262_144),
            blobs: S3Blobs::new(wa_infra::aws::s3_client(&self.stack.aws), self.stack.bucket.clone()),
            keywords: OptOutKeywords::default(),
            media: None,
            portfolios: Default::default(),
            numbers_seen: Default::default(),
        }
    }

    pub(crate) async fn forwarded(&self) -> Vec<Value> {
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
    for event in &forwarded {
        // As consumers get it, conversation included.
        wa_tests::assert_events_queue_message(event);
        assert!(event["conversation"].get("marketing_opt_out").is_some(), "enriched");
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
    let facts = wa_core::identity::resolve(&p.table, PHONE, USER).await.unwrap().facts;
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
    let report =
        wa_cli::stats(&p.table, PHONE, Some(USER), &month, now, Some(&card), &Default::default()).await.unwrap();
    assert!(report.contains("estimated cost: INR 0.80"), "{report}");
    assert!(report.contains("read 1, played 0, failed 0"), "{report}");
    assert!(report.contains("billable messages: marketing/regular 1"), "{report}");
    assert!(report.contains("service window: closed (last message 2025-06-15T15:08:20Z)"), "{report}");
    assert!(report.contains("marketing: not opted out"), "{report}");
    let report =
        wa_cli::stats(&p.table, PHONE, Some("someone-else"), &month, now, None, &Default::default()).await.unwrap();
    assert!(report.contains("never wrote to this number"), "{report}");
    assert!(report.contains("estimated cost: INR 0.86 (example India rate card"), "{report}");
    let report = wa_cli::message(&p.table, "wamid.out1").await.unwrap();
    assert!(report.contains("status: read at"), "{report}");
    assert!(report.contains("pricing: marketing/regular"), "{report}");
    assert!(report.contains("send request: not sent through this pipeline"), "{report}");
}

#[tokio::test]
async fn an_event_larger_than_a_state_item_and_an_events_message_goes_through() {
    // The template's inbound queue takes 1 MiB messages; a DynamoDB item holds at most 400 KB and
    // the events queue 256 KiB.
    let p = Pipeline::with_queues_of(1_048_576).await;
    let history: Vec<Value> = (0..1500)
        .map(|i| {
            json!({"from": USER, "id": format!("wamid.h{i}"), "timestamp": "1750000000", "type": "text",
                        "text": {"body": "x".repeat(400)}})
        })
        .collect();
    let body = webhook(
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
               "history": [{"metadata": {"phase": 0, "chunk_order": 1, "progress": 10},
                            "threads": [{"id": USER, "messages": history}]}]}),
        "history",
    );
    assert!(body.len() > 600_000, "{}", body.len());
    p.post(&body).await;
    let queued = drain_queue(&p.stack.aws, &p.stack.queue_url).await;
    assert!(serde_json::from_str::<Value>(&queued[0]).unwrap()["payload"].is_object(), "inline on the inbound queue");
    let sqs = aws_sdk_sqs::Client::new(&p.stack.aws);
    for message in &queued {
        sqs.send_message().queue_url(&p.stack.queue_url).message_body(message).send().await.unwrap();
    }
    p.process(1).await;
    let forwarded = drain_queue(&p.stack.aws, &p.events).await;
    assert_eq!(forwarded.len(), 1);
    let pointer: Value = serde_json::from_str(&forwarded[0]).unwrap();
    assert!(pointer["payload"].is_null() && pointer["payload_ref"]["key"].is_string(), "claim-checked: {pointer}");
    assert_eq!(pointer["event_id"].as_str().unwrap().len(), "sha256:".len() + 64);
    let blobs = S3Blobs::new(wa_infra::aws::s3_client(&p.stack.aws), p.stack.bucket.clone());
    let full: Value =
        serde_json::from_str(&wa_core::event::resolve_event(&blobs, &forwarded[0]).await.unwrap()).unwrap();
    assert_eq!(full["payload"]["history"][0]["threads"][0]["messages"][1499]["id"], "wamid.h1499");
    assert_eq!(full["event_id"], pointer["event_id"]);
    assert_eq!(full["kind"], "other");
    assert!(pointer.get("conversation").is_none() && full.get("conversation").is_none(), "history has none");
    // A user's message that large (no real text is; a flow's response can be) is forwarded the
    // same way, its conversation both in the queue message and in the stored event.
    p.post(&message("wamid.huge", &"y".repeat(300_000), 1_750_000_000)).await;
    p.process(1).await;
    let forwarded = drain_queue(&p.stack.aws, &p.events).await;
    assert_eq!(forwarded.len(), 1);
    let pointer: Value = serde_json::from_str(&forwarded[0]).unwrap();
    assert!(pointer["payload_ref"]["key"].is_string(), "claim-checked: {pointer}");
    assert_eq!(pointer["conversation"]["marketing_opt_out"], false, "the message carries the conversation");
    let full: Value =
        serde_json::from_str(&wa_core::event::resolve_event(&blobs, &forwarded[0]).await.unwrap()).unwrap();
    assert_eq!(full["event_id"], "wamid.huge");
    assert_eq!(full["conversation"]["marketing_opt_out"], false);
    assert_eq!(full["payload"]["text"]["body"].as_str().unwrap().len(), 300_000);
    // A redelivery is still recognised as a duplicate.
    p.post(&body).await;
    p.process(1).await;
    assert!(p.forwarded().await.is_empty());
}

#[tokio::test]
async fn an_event_processed_but_not_forwarded_goes_out_later_with_its_conversation_then() {
    use wa_tests::fault_proxy::{FaultPlan, FaultProxy};
    let p = Pipeline::new().await;
    // The events queue answers 500 to the first three calls: one publish, all its attempts.
    let plan = FaultPlan::AnswerError { status: 500, code: "InternalError", calls: 3 };
    let proxy = FaultProxy::start(&wa_tests::moto().endpoint, plan).await;
    let processor = p.processor_via(&proxy.endpoint).await;
    p.post(&message("wamid.late", "hello", 1_750_000_000)).await;
    let sqs = aws_sdk_sqs::Client::new(&p.stack.aws);
    let batch = esm::receive(&sqs, &p.stack.queue_url).await.expect("the event");
    let deadline = now_ms() + 1000;
    let response = processor.handle(&batch.event, deadline).await;
    assert_eq!(response.batch_item_failures.len(), 1, "recorded, not forwarded: retried");
    assert_eq!(proxy.batch_calls(), 3);
    // Meanwhile the user opts out; the redelivery after the first attempt's deadline forwards the
    // event as it was processed (not opted out then), once.
    p.post(&message("wamid.stop", "STOP", 1_750_000_100)).await;
    let stop = esm::receive(&sqs, &p.stack.queue_url).await.expect("the STOP");
    let response = processor.handle(&stop.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    esm::settle(&sqs, &p.stack.queue_url, &stop, &response).await;
    assert!(p.table.conversation(PHONE, USER).await.unwrap().unwrap().1, "opted out now");
    assert_eq!(p.forwarded().await[0]["conversation"]["marketing_opt_out"], true);
    while now_ms() <= deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = processor.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), 1, "{forwarded:#?}");
    assert_eq!(forwarded[0]["event_id"], "wamid.late");
    assert_eq!(forwarded[0]["conversation"]["marketing_opt_out"], false, "the conversation it was processed with");
    assert_eq!(forwarded[0]["payload"]["text"]["body"], "hello");
    // Processed and forwarded: a further delivery is a duplicate.
    assert!(processor.handle(&batch.event, now_ms() + 30_000).await.batch_item_failures.is_empty());
    assert!(p.forwarded().await.is_empty());
}

#[tokio::test]
async fn a_batchs_events_go_out_together_and_each_is_retried_alone() {
    use wa_tests::fault_proxy::{FaultPlan, FaultProxy};
    let p = Pipeline::new().await;
    // The events queue fails the first entry of every request, retries included.
    let proxy = FaultProxy::start(&wa_tests::moto().endpoint, FaultPlan::FailFirstEntryAlways).await;
    let processor = p.processor_via(&proxy.endpoint).await;
    for n in 0..10 {
        p.post(&message(&format!("wamid.batch{n}"), "hello", 1_750_000_000 + n)).await;
    }
    let sqs = aws_sdk_sqs::Client::new(&p.stack.aws);
    let batch = esm::receive(&sqs, &p.stack.queue_url).await.expect("the events");
    let records = batch.event.records.len();
    assert!(records >= 2, "a batch of several: {records}");
    let deadline = now_ms() + 1000;
    let response = processor.handle(&batch.event, deadline).await;
    assert_eq!(proxy.batch_calls(), 4, "one request for the whole batch, then its failed entry three times");
    assert_eq!(response.batch_item_failures.len(), 1, "only the event whose message was not accepted: {response:?}");
    let failed = response.batch_item_failures[0].item_identifier.clone();
    assert_eq!(Some(failed.as_str()), batch.event.records[0].message_id.as_deref(), "the first entry's");
    let forwarded = p.forwarded().await;
    assert_eq!(forwarded.len(), records - 1, "the others, once each");
    // Its redelivery after the first attempt's deadline forwards it; the others are duplicates.
    while now_ms() <= deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = p.processor.handle(&batch.event, now_ms() + 30_000).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let again = p.forwarded().await;
    assert_eq!(again.len(), 1, "{again:#?}");
    let first: Value = serde_json::from_str(batch.event.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(again[0]["event_id"], first["event_id"]);
}
