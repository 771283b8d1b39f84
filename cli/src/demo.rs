//! `wa dev --demo`: a scenario end to end on the local stack, checked as it goes.
//!
//! 1. a template to a user → accepted; its statuses come back as signed webhooks (read);
//! 2. the user replies (Meta names them by phone and business-scoped user id) → the 24-hour window
//!    opens, for both ids;
//! 3. a free-form reply inside the window, to the phone → accepted; another to the BSUID → accepted;
//! 4. a free-form message to a user who never wrote → refused (`window_closed`), no Graph call;
//!    the request's fallback SMS goes out instead (the local stack prints it);
//! 5. the user writes STOP → opted out of marketing;
//! 6. a marketing template to them → refused (`opted_out`), no Graph call;
//! 7. the user sends a document → stored in the local blob store, its digest checked, the event
//!    carrying where;
//! 8. a PDF from the blob store to the user → uploaded once, sent by media id;
//! 9. a template as code (`templates/order_update.yaml`) linted, pushed, approved by the
//!    simulator's review (its webhook fills the template registry) and sent.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_core::identity::resolve;

use wa_core::ports::{BlobStore, ConversationStore, MediaStore};
use wa_infra_local::LocalBlobs;

use crate::dev::{DEV_PHONE_NUMBER_ID, DevStack, enqueue, mask};

const ANA: &str = "16505550101";
const BEN: &str = "16505550102";
const WAIT: Duration = Duration::from_secs(20);

/// Runs the scenario; `say` gets one line per step. Err names the step that went wrong.
pub async fn run(stack: &DevStack, say: &(dyn Fn(&str) + Sync)) -> Result<(), String> {
    let simulator = stack.simulator.as_ref().ok_or("the demo needs the simulator (unset WA_ACCESS_TOKEN)")?;
    let run = wa_infra::telemetry::now_millis();
    let key = |step: &str| format!("demo-{run}-{step}");
    let key_of = key;
    let events = &stack.queues.events;
    let start = events.last_id().map_err(|e| e.to_string())?;

    say(&format!("1. a template to {}", mask(ANA)));
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": ANA, "idempotency_key": key("welcome"),
        "callback_data": "demo-welcome",
        "message": {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}});
    enqueue(&stack.queues.outbound, &request)?;
    let outcome = wait_for(stack, start, |e| e["idempotency_key"] == json!(key("welcome"))).await?;
    expect(&outcome, "accepted")?;
    let wamid = outcome["wamid"].as_str().unwrap_or_default().to_owned();
    wait_for(stack, start, |e| {
        e["kind"] == "status" && e["payload"]["id"] == json!(wamid) && e["payload"]["status"] == "read"
    })
    .await
    .map_err(|e| format!("step 1, status webhooks: {e}"))?;
    settle().await;
    say("   accepted; sent, delivered and read came back as signed webhooks");

    say(&format!("2. {} replies", mask(ANA)));
    let inbound = simulator.user_writes(DEV_PHONE_NUMBER_ID, ANA, "Ana", "Hi! Is my order ready?").await?;
    wait_for(stack, start, |e| e["kind"] == "message" && e["payload"]["id"] == json!(inbound)).await?;
    let facts = resolve(&stack.state, DEV_PHONE_NUMBER_ID, ANA).await.map_err(|e| e.to_string())?.facts;
    let open = facts.service_window_open(now_s());
    if !open {
        return Err("step 2: the service window did not open".into());
    }
    settle().await;
    let bsuid = simulator.bsuid_of(ANA);
    let person = resolve(&stack.state, DEV_PHONE_NUMBER_ID, &bsuid).await.map_err(|e| e.to_string())?;
    if !person.ids.iter().any(|id| id == ANA) || !person.facts.service_window_open(now_s()) {
        return Err("step 2: the phone and the business-scoped user id are not one person".into());
    }
    say("   the 24-hour service window is open, under her phone and her business-scoped user id");

    say("3. a free-form reply inside the window");
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": ANA, "idempotency_key": key("reply"),
        "message": {"type": "text", "text": {"body": "Yes, it ships today."}, "context": {"message_id": inbound}}});
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key("reply"))).await?, "accepted")?;
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": bsuid, "idempotency_key": key("reply-bsuid"),
        "message": {"type": "text", "text": {"body": "Tracking number follows."}}});
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key("reply-bsuid"))).await?, "accepted")?;
    settle().await;
    say("   accepted, by phone and by business-scoped user id");

    say(&format!("4. a free-form message to {}, who never wrote", mask(BEN)));
    let calls = simulator.accepted_count();
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": BEN, "idempotency_key": key("cold"),
        "message": {"type": "text", "text": {"body": "Hello there"}},
        "fallback_channels": {"sms": {"to": format!("+{BEN}"), "text": "Hello there (by SMS: WhatsApp could not reach you)"}}});
    let sms_before = stack.outbox.sent().len();
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key("cold"))).await?, "window_closed")?;
    if simulator.accepted_count() != calls {
        return Err("step 4: a message outside the window reached the Graph API".into());
    }
    let fallback = wait_for(stack, start, |e| {
        e["idempotency_key"] == json!(key("cold")) && e["kind"].as_str().is_some_and(|k| k.starts_with("fallback_"))
    })
    .await?;
    if fallback["kind"] != "fallback_sent" || stack.outbox.sent().len() != sms_before + 1 {
        return Err(format!("step 4: expected one fallback SMS, got {} ({})", fallback["kind"], fallback["reason"]));
    }
    settle().await;
    say("   refused: window_closed, no Graph call; its fallback SMS went out instead (printed, not sent)");

    say(&format!("5. {} writes STOP", mask(ANA)));
    let stop = simulator.user_writes(DEV_PHONE_NUMBER_ID, ANA, "Ana", "STOP").await?;
    wait_for(stack, start, |e| e["kind"] == "message" && e["payload"]["id"] == json!(stop)).await?;
    let facts = resolve(&stack.state, DEV_PHONE_NUMBER_ID, ANA).await.map_err(|e| e.to_string())?.facts;
    if !facts.marketing_opt_out {
        return Err("step 5: STOP did not opt the user out".into());
    }
    settle().await;
    say("   opted out of marketing");

    say(&format!("6. a marketing template to {}", mask(ANA)));
    let calls = simulator.accepted_count();
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": ANA, "idempotency_key": key("promo"),
        "category": "marketing",
        "message": {"type": "template", "template": {"name": "spring_sale", "language": {"code": "en_US"}}}});
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key("promo"))).await?, "opted_out")?;
    if simulator.accepted_count() != calls {
        return Err("step 6: a marketing message to an opted-out user reached the Graph API".into());
    }
    settle().await;
    say("   refused: opted_out, no Graph call");

    say(&format!("7. {} sends a document", mask(ANA)));
    let sent = simulator
        .user_sends_media(&wa_simulator::media::InboundMedia {
            phone_number_id: DEV_PHONE_NUMBER_ID.into(),
            from: ANA.into(),
            kind: "document".into(),
            mime_type: "application/pdf".into(),
            size: 200 * 1024,
            seed: run,
            data_base64: None,
            filename: Some("id-card.pdf".into()),
            caption: None,
            omit_url: false,
        })
        .await?;
    let event = wait_for(stack, start, |e| e["kind"] == "message" && e["payload"]["id"] == json!(sent.wamid)).await?;
    let key = event["media"]["key"].as_str().ok_or("step 7: the event carries no stored file")?.to_owned();
    let stored = LocalBlobs::new(&stack.db).stored_size(&key).await.map_err(|e| e.to_string())?;
    if stored != Some(200 * 1024) {
        return Err(format!("step 7: {key} is not in the local blob store"));
    }
    settle().await;
    say(&format!("   stored as {key}, its SHA-256 checked against the webhook's"));

    say(&format!("8. a PDF from the blob store to {}", mask(ANA)));
    let uploads = simulator.media_counts().0;
    let pdf = wa_simulator::media::file_bytes(120 * 1024, 42);
    LocalBlobs::new(&stack.db)
        .put("outbound/demo-report.pdf", pdf, "application/pdf")
        .await
        .map_err(|e| e.to_string())?;
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": ANA, "idempotency_key": key_of("report"),
        "message": {"type": "document", "document": {"s3": {"bucket": "local", "key": "outbound/demo-report.pdf"},
                                                     "filename": "report.pdf"}}});
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key_of("report"))).await?, "accepted")?;
    if simulator.media_counts().0 > uploads + 1 {
        return Err("step 8: the file was uploaded more than once".into());
    }
    settle().await;
    say("   uploaded to Meta once, sent by its media id");

    say("9. a template as code: lint, push, approval, send");
    let template: Value = serde_saphyr::from_str(DEMO_TEMPLATE).map_err(|e| e.to_string())?;
    let errors: Vec<_> = wa_core::template_lint::lint(&template)
        .into_iter()
        .filter(|f| f.severity == wa_core::template_lint::Severity::Error)
        .collect();
    if !errors.is_empty() {
        return Err(format!("step 9: the demo template does not lint: {errors:?}"));
    }
    let dir = std::env::temp_dir().join(format!("wa-demo-templates-{run}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("order_update.yaml");
    std::fs::write(&file, DEMO_TEMPLATE).map_err(|e| e.to_string())?;
    let api = crate::templates::TemplateApi {
        base: simulator.base_url(),
        version: wa_infra::graph::DEFAULT_VERSION.into(),
        waba_id: "102290129340398".into(),
        token: crate::dev::DEV_ACCESS_TOKEN.into(),
    };
    let (report, failed) = api.push(std::slice::from_ref(&file), false).await?;
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        return Err(format!("step 9: push failed: {report}"));
    }
    // Approved by the simulator's review, and its webhook recorded (a registry kept from an earlier
    // run may say APPROVED already: the simulator's own answer comes first).
    let started = Instant::now();
    loop {
        let listed = api.list(Some("order_update")).await?;
        let reviewed = listed.iter().any(|t| t["language"] == "en_US" && t["status"] == "APPROVED");
        let facts = stack.state.template("order_update", "en_US").await.map_err(|e| e.to_string())?;
        if reviewed && facts.and_then(|f| f.status).as_deref() == Some("APPROVED") {
            break;
        }
        if started.elapsed() > WAIT {
            return Err("step 9: the approval webhook did not reach the template registry".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = json!({"phone_number_id": DEV_PHONE_NUMBER_ID, "to": ANA, "idempotency_key": key_of("template"),
        "message": {"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "#4521"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "860198"}, {"type": "text", "text": "today"}]}]}}});
    enqueue(&stack.queues.outbound, &request)?;
    expect(&wait_for(stack, start, |e| e["idempotency_key"] == json!(key_of("template"))).await?, "accepted")?;
    settle().await;
    say("   linted, pushed (PENDING), approved by webhook into the registry, sent");
    Ok(())
}

/// The demo's template (the repository's `templates/order_update.yaml`).
const DEMO_TEMPLATE: &str = include_str!("../../templates/order_update.yaml");

/// Lets the console follower print the events of the step before its result line.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn now_s() -> i64 {
    i64::try_from(wa_infra::telemetry::now_millis() / 1000).unwrap_or(0)
}

fn expect(outcome: &Value, status: &str) -> Result<(), String> {
    if outcome["status"] == status {
        Ok(())
    } else {
        Err(format!(
            "expected {status} for {}, got {} ({})",
            outcome["idempotency_key"], outcome["status"], outcome["error"]["reason"]
        ))
    }
}

/// The first event after `after` on the events queue that matches, within [`WAIT`].
async fn wait_for(stack: &DevStack, after: i64, matches: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        for (_, body, _) in stack.queues.events.peek(after, 10_000).map_err(|e| e.to_string())? {
            if let Ok(event) = serde_json::from_str::<Value>(&body)
                && matches(&event)
            {
                return Ok(event);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing arrived on the events queue within {WAIT:?}"))
}
