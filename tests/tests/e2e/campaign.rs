//! Campaigns on the local stack (`wa dev`'s own code, in-process, against its simulator): a
//! two-variant campaign interrupted while queueing and run again sends every recipient exactly
//! once; opted-out recipients of a marketing campaign are suppressed; the report counts each
//! variant's funnel and draws it.

use std::collections::HashMap;
use std::time::Duration;

use wa_cli::campaign::{Outbound, SendOptions};
use wa_cli::dev::{DEV_PHONE_NUMBER_ID, DevOptions, DevStack};
use wa_core::campaign::Variant;
use wa_core::ports::{ConversationStore, LimitStore};
use wa_core::send::Category;

fn audience(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut csv = String::from("to,1,first_name\n");
    for i in 0..n {
        csv.push_str(&format!("1650600{i:04},\"10:{:02}, Friday\",Person {i}\n", i % 60));
    }
    let path = dir.join("audience.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_campaign_resumed_messages_everyone_once_and_reports_its_variants() {
    let dir = std::env::temp_dir().join(wa_tests::unique("wa-campaign"));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 600;
    let stack =
        DevStack::start(&DevOptions { messages_per_second: 400, ..DevOptions::loopback(dir.clone()) }).await.unwrap();
    // Two recipients wrote STOP before the campaign.
    for i in [7, 8] {
        assert!(
            stack.state.set_marketing_opt_out(DEV_PHONE_NUMBER_ID, &format!("1650600{i:04}"), true, 1).await.unwrap()
        );
    }
    let options = SendOptions {
        campaign: "spring-sale".into(),
        audience: audience(&dir, n),
        variants: vec![Variant::parse("a=reminder_v1:50").unwrap(), Variant::parse("b=reminder_v2:50").unwrap()],
        phone_number_ids: vec![DEV_PHONE_NUMBER_ID.into()],
        language: "en".into(),
        category: Some(Category::Marketing),
        progress: false,
    };
    let outbound = Outbound::Local(stack.queues.outbound.clone());

    // Interrupted: the send is dropped mid-way (as Ctrl-C or a crash would stop it).
    let cut =
        tokio::time::timeout(Duration::from_millis(5), wa_cli::campaign::send(&options, &stack.state, &outbound)).await;
    assert!(cut.is_err(), "the first run must be cut short for this test to mean anything");
    // Run again to the end.
    let summary = wa_cli::campaign::send(&options, &stack.state, &outbound).await.unwrap();
    assert!(summary.repeated > 0, "the first run had queued a part: {summary:?}");
    assert_eq!(summary.total, n);
    assert_eq!(summary.suppressed, 2);
    assert_eq!(summary.queued + summary.repeated, n - 2);
    // And once more, much later: nothing new is queued twice within the window, nobody is sent twice.
    let again = wa_cli::campaign::send(&options, &stack.state, &outbound).await.unwrap();
    assert_eq!(again.queued, 0, "every request is still within the queue's deduplication window");

    let simulator = stack.simulator.as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while simulator.accepted_count() < n - 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = simulator.accepted();
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for a in &accepted {
        *per_recipient.entry(a.body["to"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), n - 2, "everyone but the two who opted out");
    assert!(per_recipient.values().all(|&c| c == 1), "nobody messaged twice");
    assert!(!per_recipient.contains_key("16506000007") && !per_recipient.contains_key("16506000008"));
    let first = &accepted[0].body;
    assert_eq!(first["template"]["components"][0]["parameters"][1]["parameter_name"], "first_name");
    assert!(first["biz_opaque_callback_data"].as_str().unwrap().contains("\"campaign\":\"spring-sale\""));

    // Let the statuses come back (the simulator sends sent, delivered, read), then report.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lookup = wa_cli::campaign::local_lookup(&stack.state);
    let funnels =
        wa_cli::campaign::report(&stack.state, &lookup, "spring-sale", Duration::from_secs(86_400)).await.unwrap();
    let names: Vec<&str> = funnels.iter().map(|f| f.variant.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(funnels.iter().map(|f| f.queued).sum::<u64>(), u64::try_from(n - 2).unwrap(), "re-runs count once");
    assert_eq!(funnels.iter().map(|f| f.suppressed).sum::<u64>(), 2);
    assert_eq!(funnels.iter().map(|f| f.sent).sum::<u64>(), u64::try_from(n - 2).unwrap());
    for f in &funnels {
        assert!(f.sent > (n as u64) / 3, "each variant gets about half: {f:?}");
        assert!(f.delivered > 0 && f.delivered <= f.sent, "{f:?}");
    }
    let svg = wa_cli::campaign::svg("spring-sale", &funnels).unwrap();
    assert!(svg.contains("variant a") && svg.contains("variant b"));
    let table = wa_cli::campaign::table("spring-sale", &funnels);
    assert!(table.lines().count() == 4, "{table}");
    stack.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Meta announces TIER_250 (the simulator's `phone_number_quality_update` webhook, through the
/// local stack's ingest and processor): a 600-recipient campaign reaches exactly 250 people, the
/// other 350 requests wait on the outbound queue (deferred, not failed), the simulator never
/// refuses a send for the limit (its own count, 131048), and a user already reached costs
/// nothing more. Then `THROUGHPUT_UPGRADE` lifts the number's rate for the senders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_250_campaign_reaches_250_people_and_defers_the_rest() {
    let dir = std::env::temp_dir().join(wa_tests::unique("wa-campaign-limit"));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 600;
    let stack =
        DevStack::start(&DevOptions { messages_per_second: 400, ..DevOptions::loopback(dir.clone()) }).await.unwrap();
    let simulator = stack.simulator.as_ref().unwrap();
    simulator.announce_quality(DEV_PHONE_NUMBER_ID, "ONBOARDING", "TIER_250").await.unwrap();
    let portfolio = wa_core::limit::DEFAULT_PORTFOLIO;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let facts = stack.state.limit_facts(&[], &[portfolio]).await.unwrap();
        if facts.windows[portfolio].tier == Some(wa_core::limit::Tier::Limited(250)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the tier was never learned from the webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let options = SendOptions {
        campaign: "limited".into(),
        audience: audience(&dir, n),
        variants: vec![Variant::parse("a=reminder_v1:50").unwrap(), Variant::parse("b=reminder_v2:50").unwrap()],
        phone_number_ids: vec![DEV_PHONE_NUMBER_ID.into()],
        language: "en".into(),
        category: Some(Category::Utility),
        progress: false,
    };
    let outbound = Outbound::Local(stack.queues.outbound.clone());
    let summary = wa_cli::campaign::send(&options, &stack.state, &outbound).await.unwrap();
    assert_eq!(summary.queued, n);

    // Every request is either sent or deferred: nothing visible, nothing in the DLQ.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let info = stack.queues.outbound.info().unwrap();
        if simulator.accepted_count() >= 250 && info.visible == 0 && info.in_flight == (n - 250) as u64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sent {}, queue {info:?}", simulator.accepted_count());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = simulator.accepted();
    let recipients: std::collections::HashSet<String> =
        accepted.iter().map(|a| a.body["to"].as_str().unwrap().to_owned()).collect();
    assert_eq!(accepted.len(), 250, "exactly the limit");
    assert_eq!(recipients.len(), 250, "each once");
    assert_eq!(simulator.limit_refusals(), 0, "the pipeline never went past Meta's limit");
    assert_eq!(stack.queues.outbound.dlq().info().unwrap().visible, 0, "deferred, not failed");
    let window = stack.state.limit_facts(&[], &[portfolio]).await.unwrap().windows.remove(portfolio).unwrap();
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(window.usage(None, now_s), (250, Some(250)));
    let lines = wa_cli::limit_lines(&stack.state, DEV_PHONE_NUMBER_ID, &Default::default(), now_s).await.unwrap();
    assert!(lines.contains("250 of 250 unique users in 24 h (100 %, announced by Meta)"), "{lines}");
    assert!(lines.contains("full: templates to new users wait until"), "{lines}");
    let lookup: wa_cli::campaign::MessageLookup<'_> = Box::new(|_| Box::pin(async { Ok((None, None)) }));
    let funnels =
        wa_cli::campaign::report(&stack.state, &lookup, "limited", Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(funnels.iter().map(|f| f.sent).sum::<u64>(), 250, "the report shows what went");

    // A template to someone already reached in the window goes at once.
    let reached = recipients.iter().next().unwrap().clone();
    let request = serde_json::json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": reached,
        "idempotency_key": "again-1", "message": {"type": "template",
        "template": {"name": "reminder_v1", "language": {"code": "en"}}}});
    assert!(stack.queues.outbound.send(&request.to_string(), Some(&reached), Some("again-1")).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while simulator.accepted_count() < 251 {
        assert!(std::time::Instant::now() < deadline, "a user already reached was held back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // THROUGHPUT_UPGRADE names the number by its display number; the senders read 1,000/s.
    simulator.announce_quality(DEV_PHONE_NUMBER_ID, "THROUGHPUT_UPGRADE", "TIER_2K").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let facts = stack.state.limit_facts(&[DEV_PHONE_NUMBER_ID], &[portfolio]).await.unwrap();
        if facts.rates.get(DEV_PHONE_NUMBER_ID) == Some(&1000)
            && facts.windows[portfolio].tier == Some(wa_core::limit::Tier::Limited(2000))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the upgrade was never learned: {facts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
