//! Inbound media end to end: the simulator's user sends a file → its webhook through ingest → the
//! event processor (state) → the media queue → the media fetcher (the simulator's media API, S3 on
//! moto) → the events queue with the stored file's reference.

use std::time::Duration;

use media_fetcher::{FetchConfig, MediaFetcher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wa_infra::media::GraphMedia;
use wa_infra::s3::S3Blobs;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_simulator::media::{InboundMedia, file_bytes};
use wa_simulator::{Fault, FaultKind, SimConfig, Simulator};
use wa_tests::esm;

use crate::processor::Pipeline;
use crate::simulator::serve_ingest;
use crate::stack::APP_SECRET;

const PHONE: &str = "106540352242922";
const TOKEN: &str = "sim-access-token";
const MB: usize = 1024 * 1024;

type Fetcher =
    MediaFetcher<GraphMedia, S3Blobs, SqsQueue, CachedSecrets<SecretsManagerFetch>, wa_infra::dynamo::StateTable>;

struct Rig {
    p: Pipeline,
    sim: Simulator,
    fetcher: Fetcher,
}

impl Rig {
    async fn new() -> Self {
        let p = Pipeline::with_media().await;
        let url = serve_ingest(p.stack.ingest()).await;
        let config = SimConfig { webhook_url: Some(url), app_secret: APP_SECRET.into(), ..SimConfig::default() };
        let sim = Simulator::start("127.0.0.1:0", config).await.unwrap();
        let secret_id = wa_tests::create_secret(&p.stack.aws, &wa_tests::send_stack::secret(TOKEN), None, None).await;
        let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(&p.stack.aws), secret_id);
        let fetcher = MediaFetcher {
            graph: GraphMedia::new(&sim.base_url(), "v25.0", Duration::from_secs(10)).unwrap(),
            store: S3Blobs::new(wa_infra::aws::s3_client(&p.stack.aws), p.stack.bucket.clone()),
            events: SqsQueue::new(&Sqs::new(&p.stack.aws).unwrap(), p.events.clone(), 262_144),
            secrets: CachedSecrets::new(fetch, CachePolicy::default()),
            dedupe: p.table.clone(),
            config: FetchConfig::default(),
        };
        Self { p, sim, fetcher }
    }

    async fn user_sends(&self, kind: &str, mime: &str, size: usize, seed: u64) -> wa_simulator::media::SentMedia {
        let media = InboundMedia {
            phone_number_id: PHONE.into(),
            from: "16505551234".into(),
            kind: kind.into(),
            mime_type: mime.into(),
            size,
            seed,
            data_base64: None,
            filename: (kind == "document").then(|| "report.pdf".into()),
            caption: None,
            omit_url: false,
        };
        self.sim.user_sends_media(&media).await.unwrap()
    }

    /// The processor over the inbound queue, then the fetcher over the media queue (each record
    /// delivered `copies` times); returns what reached the events queue.
    async fn run(&self, copies: usize) -> Vec<Value> {
        self.p.process(1).await;
        let sqs = aws_sdk_sqs::Client::new(&self.p.stack.aws);
        let media_queue = self.p.media.clone().unwrap();
        while let Some(batch) = esm::receive(&sqs, &media_queue).await {
            let deadline = now_ms() + 60_000;
            for _ in 1..copies {
                self.fetcher.handle(&batch.event, deadline).await;
            }
            let response = self.fetcher.handle(&batch.event, deadline).await;
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            esm::settle(&sqs, &media_queue, &batch, &response).await;
        }
        let events = self.p.forwarded().await;
        for event in &events {
            wa_tests::assert_events_queue_message(event);
        }
        events
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let s3 = wa_infra::aws::s3_client(&self.p.stack.aws);
        let out = s3.get_object().bucket(&self.p.stack.bucket).key(key).send().await.ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }
}

fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn media_of<'a>(events: &'a [Value], wamid: &str) -> &'a Value {
    &events.iter().find(|e| e["event_id"] == json!(wamid)).unwrap_or_else(|| panic!("{wamid}: {events:#?}"))["media"]
}

#[tokio::test]
async fn an_image_and_a_20_mb_document_are_stored_checked_and_referenced_once() {
    let rig = Rig::new().await;
    let image = rig.user_sends("image", "image/jpeg", 300 * 1024, 1).await;
    let document = rig.user_sends("document", "application/pdf", 20 * MB, 2).await;
    let events = rig.run(2).await; // every media event delivered twice
    assert_eq!(events.len(), 2, "one event per message, duplicates forwarded once");
    for (sent, size, seed, mime) in [(&image, 300 * 1024, 1, "image/jpeg"), (&document, 20 * MB, 2, "application/pdf")]
    {
        let media = media_of(&events, &sent.wamid);
        let expected = hex::encode(Sha256::digest(file_bytes(size, seed)));
        assert_eq!(media["sha256"], json!(expected), "{media}");
        assert_eq!(media["size"], json!(size));
        assert_eq!(media["mime_type"], mime);
        assert_eq!(media["bucket"], json!(rig.p.stack.bucket));
        let key = media["key"].as_str().unwrap();
        assert!(key.starts_with(&format!("media/{PHONE}/{expected}")), "{key}");
        let stored = rig.object(key).await.expect("the object");
        assert_eq!(hex::encode(Sha256::digest(&stored)), expected, "the stored bytes are the user's");
    }
    let downloads = rig.sim.media_counts().1;
    assert_eq!(downloads, 2);
    let first_key = media_of(&events, &document.wamid)["key"].clone();
    // The same file sent again: a new event, no new download (content-addressed, stored once).
    let again = rig.user_sends("document", "application/pdf", 20 * MB, 2).await;
    let events = rig.run(1).await;
    assert_eq!(media_of(&events, &again.wamid)["key"], first_key);
    assert_eq!(rig.sim.media_counts().1, downloads, "no second download");
}

#[tokio::test]
async fn corrupted_bytes_are_retried_then_reported_and_never_stored() {
    let rig = Rig::new().await;
    // Every download corrupted: three attempts, then the event goes on with media.error.
    rig.sim.inject(Fault { kind: FaultKind::Corrupt, count: 3, to: None, endpoint: Some("media_download".into()) });
    let sent = rig.user_sends("image", "image/png", 64 * 1024, 3).await;
    let events = rig.run(1).await;
    let media = media_of(&events, &sent.wamid);
    assert_eq!(media["error"]["reason"], "digest_mismatch", "{media}");
    assert!(media.get("key").is_none());
    assert_eq!(rig.sim.media_counts().1, 3, "three attempts");
    let expected = hex::encode(Sha256::digest(file_bytes(64 * 1024, 3)));
    assert!(rig.object(&format!("media/{PHONE}/{expected}.png")).await.is_none(), "nothing stored as good");

    // Corrupted once: the retry stores it.
    rig.sim.inject(Fault { kind: FaultKind::Corrupt, count: 1, to: None, endpoint: Some("media_download".into()) });
    let sent = rig.user_sends("image", "image/png", 64 * 1024, 4).await;
    let events = rig.run(1).await;
    let media = media_of(&events, &sent.wamid);
    assert!(media.get("error").is_none(), "{media}");
    assert!(rig.object(media["key"].as_str().unwrap()).await.is_some());
}

#[tokio::test]
async fn an_expired_url_is_fetched_again_and_a_failing_download_is_retried() {
    let rig = Rig::new().await;
    // The webhook's URL has expired by the time it is fetched: a fresh one from GET /{media-id}.
    rig.sim.inject(Fault { kind: FaultKind::ExpiredUrl, count: 1, to: None, endpoint: Some("media_webhook".into()) });
    let sent = rig.user_sends("document", "application/pdf", 2 * MB, 5).await;
    let events = rig.run(1).await;
    let media = media_of(&events, &sent.wamid);
    assert!(media.get("error").is_none(), "{media}");
    assert_eq!(media["size"], 2 * MB);
    // A download that fails (HTTP 500) at every attempt of an invocation is retried by a later
    // delivery of the queue message, not reported at once.
    rig.sim.inject(Fault {
        kind: FaultKind::HttpStatus { status: 500, accepted: false },
        count: 1,
        to: None,
        endpoint: Some("media_download".into()),
    });
    let sent = rig.user_sends("audio", "audio/ogg", 40 * 1024, 6).await;
    rig.p.process(1).await;
    let sqs = aws_sdk_sqs::Client::new(&rig.p.stack.aws);
    let media_queue = rig.p.media.clone().unwrap();
    let batch = esm::receive(&sqs, &media_queue).await.unwrap();
    let response = rig.fetcher.handle(&batch.event, now_ms() + 60_000).await;
    assert_eq!(response.batch_item_failures.len(), 1, "retried later");
    let response = rig.fetcher.handle(&batch.event, now_ms() + 60_000).await;
    assert!(response.batch_item_failures.is_empty());
    esm::settle(&sqs, &media_queue, &batch, &response).await;
    let events = rig.p.forwarded().await;
    assert!(media_of(&events, &sent.wamid).get("error").is_none());
}

/// Puts `body` in a fresh bucket on moto; returns the bucket.
async fn put_object(aws: &aws_config::SdkConfig, key: &str, content_type: &str, body: Vec<u8>) -> String {
    let bucket = wa_tests::create_bucket(aws).await;
    wa_infra::aws::s3_client(aws)
        .put_object()
        .bucket(&bucket)
        .key(key)
        .content_type(content_type)
        .body(body.into())
        .send()
        .await
        .unwrap();
    bucket
}

fn document_request(to: &str, key_suffix: &str, bucket: &str, key: &str) -> Value {
    json!({"phone_number_id": PHONE, "to": to, "idempotency_key": format!("doc-{key_suffix}"),
           "message": {"type": "document", "document": {"s3": {"bucket": bucket, "key": key}, "filename": "report.pdf",
                                                        "caption": "Your lab report"}}})
}

#[tokio::test]
async fn one_s3_document_to_three_recipients_is_uploaded_once_and_sent_three_times() {
    use wa_tests::send_stack::{SendStack, mechanics};
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let pdf = file_bytes(3 * MB, 9);
    let bucket = put_object(&stack.aws, "reports/42.pdf", "application/pdf", pdf.clone()).await;
    for (i, to) in ["16505557001", "16505557002", "16505557003"].iter().enumerate() {
        stack.enqueue(&document_request(to, &i.to_string(), &bucket, "reports/42.pdf"), &format!("d{i}")).await;
    }
    // Two pollers: concurrent senders race for the upload; one uploads, the others wait for its id.
    stack.drain(&sender, 2, Duration::from_secs(60)).await;
    let outcomes = stack.outcomes().await;
    assert_eq!(outcomes.len(), 3, "{outcomes:#?}");
    assert!(outcomes.iter().all(|o| o["status"] == "accepted"), "{outcomes:#?}");
    assert_eq!(stack.sim.media_counts().0, 1, "one upload");
    let sent: Vec<Value> = stack.sim.accepted().into_iter().map(|a| a.body).collect();
    assert_eq!(sent.len(), 3, "three sends");
    let ids: std::collections::BTreeSet<&str> = sent.iter().map(|b| b["document"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "all by the one id");
    for body in &sent {
        assert!(body["document"].get("s3").is_none());
        assert_eq!(body["document"]["filename"], "report.pdf");
        assert_eq!(body["document"]["caption"], "Your lab report");
    }
    // The uploaded file is the object's bytes: the simulator serves them back by the id.
    let id = ids.into_iter().next().unwrap().to_owned();
    let graph = GraphMedia::new(&stack.sim.base_url(), "v25.0", Duration::from_secs(10)).unwrap();
    use wa_core::ports::{MediaApi, MediaDownload};
    let info = graph.media_info(&id, PHONE, TOKEN).await.unwrap();
    assert_eq!(info.file_size, Some(3 * MB as u64));
    let mut download = graph.download(&info.url, TOKEN).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await.unwrap() {
        bytes.extend(chunk);
    }
    assert_eq!(bytes, pdf);

    // A later request for the same object: the cached id, no upload.
    stack.enqueue(&document_request("16505557004", "4", &bucket, "reports/42.pdf"), "d4").await;
    stack.drain(&sender, 1, Duration::from_secs(30)).await;
    assert_eq!(stack.sim.media_counts().0, 1);
    assert_eq!(stack.sim.accepted_count(), 4);
}

#[tokio::test]
async fn files_meta_would_refuse_end_as_failed_outcomes_without_a_graph_call() {
    use wa_tests::send_stack::{SendStack, mechanics};
    let stack = SendStack::new(SimConfig::default()).await;
    let sender = stack.sender(mechanics());
    let zip = put_object(&stack.aws, "exports/data.zip", "application/zip", vec![1; 1000]).await;
    let big = put_object(&stack.aws, "photos/big.jpg", "image/jpeg", vec![7; 6 * MB]).await;
    let requests = [
        ("zip", document_request("16505557101", "zip", &zip, "exports/data.zip"), "media.mime_type"),
        ("missing", document_request("16505557102", "missing", &zip, "nope.pdf"), "media.s3.missing"),
        (
            "big",
            json!({"phone_number_id": PHONE, "to": "16505557103", "idempotency_key": "doc-big",
                   "message": {"type": "image", "image": {"s3": {"bucket": big, "key": "photos/big.jpg"}}}}),
            "media.size",
        ),
    ];
    for (name, request, _) in &requests {
        stack.enqueue(request, name).await;
    }
    stack.drain(&sender, 1, Duration::from_secs(30)).await;
    let outcomes = stack.outcomes().await;
    for (name, _, rule) in &requests {
        let outcome = outcomes.iter().find(|o| o["idempotency_key"] == format!("doc-{name}")).unwrap();
        assert_eq!(outcome["status"], "failed", "{outcome}");
        assert!(outcome["error"]["reason"].as_str().unwrap().starts_with(rule), "{outcome}");
        wa_tests::assert_events_queue_message(outcome);
    }
    assert_eq!(stack.sim.media_counts().0, 0, "no upload");
    assert!(stack.sim.seen().is_empty(), "no Graph call");
}

#[tokio::test]
async fn wa_erase_removes_a_person_under_every_id_with_their_files_and_nobody_else() {
    let rig = Rig::new().await;
    let sent = rig.user_sends("image", "image/jpeg", 50 * 1024, 11).await;
    let other = InboundMedia { from: "16505552222".into(), ..inbound("image", "image/png", 20 * 1024, 12) };
    let kept = rig.sim.user_sends_media(&other).await.unwrap();
    // A status of a message we sent the person.
    rig.p
        .post(&crate::processor::webhook(
            json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE},
                   "statuses": [{"id": "wamid.toerase", "status": "delivered", "timestamp": "1795000000", "recipient_id": "16505551234"}]}),
            "messages",
        ))
        .await;
    let events = rig.run(1).await;
    let stored = media_of(&events, &sent.wamid)["key"].as_str().unwrap().to_owned();
    let other_key = media_of(&events, &kept.wamid)["key"].as_str().unwrap().to_owned();
    let bucket = S3Blobs::new(wa_infra::aws::s3_client(&rig.p.stack.aws), rig.p.stack.bucket.clone());

    let dry = wa_cli::erase::erase_aws(&rig.p.table, Some(&bucket), PHONE, "16505551234", true).await.unwrap();
    assert!(dry.contains("2 linked id(s)"), "phone and BSUID: {dry}");
    assert!(dry.contains("would delete 2 conversation records") && dry.contains("would delete 1 media files"), "{dry}");
    assert!(dry.contains("would delete 1 message statuses"), "{dry}");
    assert!(rig.object(&stored).await.is_some(), "a dry run deletes nothing");

    let bsuid = rig.sim.bsuid_of("16505551234");
    let done = wa_cli::erase::erase_aws(&rig.p.table, Some(&bucket), PHONE, &bsuid, false).await.unwrap();
    assert!(done.contains("deleted 2 conversation records") && done.contains("deleted 1 media files"), "{done}");
    assert!(!done.contains("16505551234") && !done.contains(&bsuid), "the report names nobody: {done}");
    assert!(rig.object(&stored).await.is_none(), "the person's file is gone");
    assert!(rig.object(&other_key).await.is_some(), "someone else's file is kept");
    assert!(!wa_core::identity::resolve(&rig.p.table, PHONE, "16505551234").await.unwrap().known);
    assert!(wa_core::identity::resolve(&rig.p.table, PHONE, "16505552222").await.unwrap().known);
    assert_eq!(rig.p.table.message_status("wamid.toerase").await.unwrap(), None);
}

fn inbound(kind: &str, mime: &str, size: usize, seed: u64) -> InboundMedia {
    InboundMedia {
        phone_number_id: PHONE.into(),
        from: "16505551234".into(),
        kind: kind.into(),
        mime_type: mime.into(),
        size,
        seed,
        data_base64: None,
        filename: None,
        caption: None,
        omit_url: false,
    }
}
