//! The Cloud API simulator: Meta-shaped errors, limits, faults, and signed status webhooks that
//! the real ingest handler accepts.

use std::time::Duration;

use serde_json::{Value, json};
use wa_core::ports::{GraphApi, GraphFailure};
use wa_infra::graph::GraphClient;
use wa_simulator::{SimConfig, Simulator};
use wa_tests::secret_json;

use crate::stack::Stack;

const TOKEN: &str = "sim-access-token";
const PHONE: &str = "106540352242922";

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"body": body}})
}

async fn start(config: SimConfig) -> (Simulator, GraphClient) {
    let sim = Simulator::start("127.0.0.1:0", config).await.unwrap();
    let client = GraphClient::new(&sim.base_url(), "v23.0", Duration::from_millis(800)).unwrap();
    (sim, client)
}

fn code(result: Result<wa_core::ports::GraphAccepted, GraphFailure>) -> i64 {
    match result {
        Err(GraphFailure::Api { error, .. }) => error.code,
        other => panic!("expected a Graph error, got {other:?}"),
    }
}

#[tokio::test]
async fn checks_like_meta_with_meta_shaped_errors() {
    let (sim, graph) = start(SimConfig::default()).await;
    let ok = graph.send_message(PHONE, TOKEN, &text("16505551234", "hi")).await.unwrap();
    assert!(ok.wamid.unwrap().starts_with("wamid."));
    assert_eq!(ok.message_status.as_deref(), Some("accepted"));

    assert_eq!(code(graph.send_message(PHONE, "wrong", &text("16505551234", "hi")).await), 190);
    let mut no_product = text("16505551234", "hi");
    no_product.as_object_mut().unwrap().remove("messaging_product");
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &no_product).await), 100);
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &text("16505551234", &"x".repeat(4097))).await), 131_009);
    let no_body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {}});
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &no_body).await), 131_008);
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &text("12", "hi")).await), 100);

    // The raw answer has Meta's shape.
    let raw = reqwest::Client::new()
        .post(format!("{}/v23.0/{PHONE}/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&text("16505551234", &"x".repeat(4097)))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], 131_009);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["fbtrace_id"].is_string());
    assert!(body["error"]["error_data"]["details"].as_str().unwrap().contains("text.body: at most 4096 characters"));
    assert_eq!(sim.accepted_count(), 1);
}

#[tokio::test]
async fn enforces_throughput_and_pair_rate() {
    let config = SimConfig { messages_per_second: 5, pair_burst: 2, ..SimConfig::default() };
    let (sim, graph) = start(config).await;
    let sends = (0..8).map(|i| {
        let graph = graph.clone();
        async move { graph.send_message(PHONE, TOKEN, &text(&format!("1650555900{i}"), "burst")).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let throttled =
        results.iter().filter(|r| matches!(r, Err(GraphFailure::Api { error, .. }) if error.code == 130_429)).count();
    assert_eq!(throttled, 3, "5 per second per number");
    // Another number has its own budget.
    assert!(graph.send_message("999000111", TOKEN, &text("16505559100", "other number")).await.is_ok());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let to = "16505559200";
    assert!(graph.send_message(PHONE, TOKEN, &text(to, "1")).await.is_ok());
    assert!(graph.send_message(PHONE, TOKEN, &text(to, "2")).await.is_ok());
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &text(to, "3")).await), 131_056, "pair burst of 2");
    assert!(graph.send_message(PHONE, TOKEN, &text("16505559201", "other user")).await.is_ok());
    assert_eq!(sim.accepted_count(), 5 + 1 + 3);
}

#[tokio::test]
async fn faults_are_injected_over_http() {
    let (sim, graph) = start(SimConfig::default()).await;
    let http = reqwest::Client::new();
    let inject = |fault: Value| {
        let http = http.clone();
        let url = format!("{}/_sim/faults", sim.base_url());
        async move { assert!(http.post(url).json(&fault).send().await.unwrap().status().is_success()) }
    };
    inject(json!({"kind": "error", "code": 131_047, "count": 1})).await;
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &text("16505551234", "late")).await), 131_047);
    inject(json!({"kind": "http_status", "status": 503})).await;
    assert!(matches!(
        graph.send_message(PHONE, TOKEN, &text("16505551234", "x")).await,
        Err(GraphFailure::Ambiguous(_))
    ));
    assert!(sim.accepted().is_empty());
    // Accepted by "Meta", but the answer comes after the client gave up: ambiguous.
    inject(json!({"kind": "delay", "millis": 2000, "accepted": true})).await;
    assert!(matches!(
        graph.send_message(PHONE, TOKEN, &text("16505551234", "y")).await,
        Err(GraphFailure::Ambiguous(_))
    ));
    assert_eq!(sim.accepted_count(), 1);
    inject(json!({"kind": "error", "code": 368, "to": "16505550000"})).await;
    assert!(graph.send_message(PHONE, TOKEN, &text("16505551234", "not targeted")).await.is_ok());
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &text("16505550000", "targeted")).await), 368);
    let listed: Value =
        http.get(format!("{}/_sim/messages", sim.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // The graph client treats a refused connection as unreachable (nothing was sent).
    drop(sim);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        graph.send_message(PHONE, TOKEN, &text("16505551234", "z")).await,
        Err(GraphFailure::Unreachable(_)) | Err(GraphFailure::Ambiguous(_))
    ));
}

#[tokio::test]
async fn a_redirect_is_an_error_never_followed() {
    use wa_core::ports::{AdminError, MetaAdmin};
    use wa_simulator::{Fault, FaultKind};
    let config = SimConfig::default();
    let (sim, graph) = start(config.clone()).await;
    // A redirect to the simulator itself: a client that followed it would have the message accepted.
    let messages = format!("{}/v23.0/{PHONE}/messages", sim.base_url());
    sim.inject(Fault {
        kind: FaultKind::Redirect { status: 307, location: messages.clone() },
        count: 1,
        to: None,
        endpoint: None,
    });
    match graph.send_message(PHONE, TOKEN, &text("16505551234", "hi")).await {
        Err(GraphFailure::Unreachable(reason)) => {
            let host = sim.base_url();
            assert!(reason.starts_with(&format!("HTTP 307 redirect to {host}, not followed")), "{reason}");
            assert!(!reason.contains("/messages"), "only the place, not the path: {reason}");
        }
        other => panic!("expected the redirect as an error, got {other:?}"),
    }
    assert!(sim.accepted().is_empty(), "nothing sent to the redirect's target");
    // An admin call likewise; a token echoed in the target's query string stays out of the error.
    let app = wa_core::secrets::AppSecrets::from_json(
        &json!({"app_id": config.app_id, "app_secret": config.app_secret, "verify_token": "v", "access_token": TOKEN})
            .to_string(),
    )
    .unwrap();
    sim.inject(Fault {
        kind: FaultKind::Redirect {
            status: 301,
            location: format!("https://graph.example.test/v23.0/debug_token?input_token={TOKEN}"),
        },
        count: 1,
        to: None,
        endpoint: Some("debug_token".into()),
    });
    match graph.debug_token(&app, TOKEN).await {
        Err(AdminError::Unreachable(reason)) => {
            assert!(reason.starts_with("HTTP 301 redirect to https://graph.example.test, not followed"), "{reason}");
            assert!(!reason.contains(TOKEN), "{reason}");
        }
        other => panic!("expected the redirect as an error, got {other:?}"),
    }
    // The faults are spent: the same calls succeed.
    assert!(graph.send_message(PHONE, TOKEN, &text("16505551234", "hi")).await.is_ok());
    assert!(graph.debug_token(&app, TOKEN).await.is_ok());
    assert_eq!(sim.accepted_count(), 1);
}

/// Serves the real ingest handler over HTTP on loopback (what the local stack does).
pub(crate) async fn serve_ingest(deps: crate::stack::Deps) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let deps = std::sync::Arc::new(deps);
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let deps = deps.clone();
        async move {
            let mut request = lambda_http::http::Request::builder().method(method).uri(uri);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let request = request.body(lambda_http::Body::from(body.to_vec())).unwrap();
            let response = webhook_ingest::handle(&deps, &request).await;
            (StatusCode::from_u16(response.status().as_u16()).unwrap(), response.body().to_vec())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn status_webhooks_are_signed_like_meta_and_accepted_by_ingest() {
    let stack = Stack::with_secret(262_144, &secret_json("sim-app-secret", "vt"), None, None).await;
    let url = serve_ingest(stack.ingest()).await;
    let config = SimConfig { webhook_url: Some(url), template_category: "marketing".into(), ..SimConfig::default() };
    let (sim, graph) = start(config).await;
    let mut template = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    template["biz_opaque_callback_data"] = json!("order-42");
    let wamid = graph.send_message(PHONE, TOKEN, &template).await.unwrap().wamid.unwrap();

    let mut events = Vec::new();
    for _ in 0..50 {
        events.extend(stack.drain().await);
        if events.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.webhooks_delivered(), 3);
    let statuses: Vec<&str> = events.iter().map(|e| e["payload"]["status"].as_str().unwrap()).collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["delivered", "read", "sent"]);
    for event in &events {
        assert_eq!(event["kind"], "status");
        assert_eq!(event["event_id"], format!("{wamid}:{}", event["payload"]["status"].as_str().unwrap()));
        assert_eq!(event["user_id"], "16505551234");
        assert_eq!(event["phone_number_id"], PHONE);
        assert_eq!(event["payload"]["biz_opaque_callback_data"], "order-42");
        assert_eq!(event["payload"]["pricing"]["category"], "marketing");
        assert_eq!(event["payload"]["pricing"]["billable"], true);
    }
}

#[tokio::test]
async fn token_endpoints_refuse_what_meta_refuses() {
    use wa_core::ports::{AdminError, MetaAdmin};
    let config = SimConfig { access_token_expires_at: 1, ..SimConfig::default() };
    let (sim, graph) = start(config.clone()).await;
    let app = wa_core::secrets::AppSecrets::from_json(
        &json!({"app_id": config.app_id, "app_secret": config.app_secret, "verify_token": "v", "access_token": TOKEN})
            .to_string(),
    )
    .unwrap();
    fn code<T: std::fmt::Debug>(r: Result<T, AdminError>) -> i64 {
        match r {
            Err(AdminError::Meta { code, .. }) => code,
            other => panic!("expected Meta's refusal, got {other:?}"),
        }
    }
    // An expired token can be neither used nor exchanged.
    let message = text("16505551234", "x");
    assert!(matches!(graph.send_message(PHONE, TOKEN, &message).await, Err(GraphFailure::Api { .. })));
    assert_eq!(code(graph.exchange_token(&app, TOKEN).await), 190);
    let debug = graph.debug_token(&app, TOKEN).await.unwrap();
    assert!(!debug.is_valid && debug.error.unwrap().code == Some(190));
    // Wrong app credentials.
    let mut wrong = app.clone();
    wrong.app_secret = "not-the-app-secret".into();
    assert_eq!(code(graph.exchange_token(&wrong, TOKEN).await), 1);
    assert_eq!(code(graph.debug_token(&wrong, TOKEN).await), 190);
    assert_eq!(code(graph.subscribe(&wrong, "http://127.0.0.1:9/webhook", "v").await), 190);
    // A live token is exchanged for a 60-day one, which then sends.
    sim.set_token(TOKEN, wa_simulator::TokenInfo::whatsapp(&config.app_id, 0));
    let new = graph.exchange_token(&app, TOKEN).await.unwrap();
    assert_eq!(new.expires_in, Some(60 * 86_400));
    assert!(graph.send_message(PHONE, &new.access_token, &message).await.is_ok());
    assert!(graph.debug_token(&app, "garbage").await.unwrap().error.is_some());
    // No subscription yet; a callback that does not answer fails with 2200.
    assert_eq!(graph.callback_url(&app).await.unwrap(), None);
    assert_eq!(code(graph.subscribe(&app, "http://127.0.0.1:9/webhook", "v").await), 2200);
}

/// The pipeline's validator (wa-core) and the simulator's own reading of Meta's rules agree on
/// what Meta refuses: each was written on its own, so a disagreement is a mistake in one of them.
#[test]
fn the_pipelines_validator_and_the_simulators_rules_agree() {
    let buttons = |n: usize, title: &str| {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("{title}{i}")}}))
            .collect();
        json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": list}}})
    };
    let list = |rows: usize, title: &str| {
        let rows: Vec<Value> = (0..rows).map(|i| json!({"id": format!("r{i}"), "title": title})).collect();
        json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Pick", "sections": [{"title": "A", "rows": rows}]}}})
    };
    let cases: Vec<Value> = vec![
        json!({"type": "text", "text": {"body": "hi"}}),
        json!({"type": "text", "text": {"body": "😀".repeat(4096)}}),
        json!({"type": "text", "text": {"body": "x".repeat(4097)}}),
        json!({"type": "text", "text": {"body": ""}}),
        json!({"type": "text", "text": {}}),
        json!({"type": "image", "image": {"link": "https://x.example/a.png", "caption": "c".repeat(1024)}}),
        json!({"type": "image", "image": {"link": "https://x.example/a.png", "caption": "c".repeat(1025)}}),
        json!({"type": "document", "document": {"filename": "a.pdf"}}),
        buttons(1, "B"),
        buttons(3, "B"),
        buttons(4, "B"),
        buttons(2, &"t".repeat(20)),
        buttons(2, &"t".repeat(21)),
        list(10, "Row"),
        list(11, "Row"),
        list(2, &"r".repeat(25)),
        json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "?"},
            "action": {"name": "cta_url", "parameters": {"display_text": "d".repeat(21), "url": "https://x.example"}}}}),
        json!({"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
        json!({"type": "template", "template": {"language": {"code": "en_US"}}}),
        json!({"type": "reaction", "reaction": {"emoji": "👍"}}),
        json!({"type": "contacts", "contacts": []}),
        json!({"type": "text", "text": {"body": "x"}, "context": {}}),
    ];
    let mut disagreements = Vec::new();
    for (i, message) in cases.into_iter().enumerate() {
        let request: wa_core::send::SendRequest =
            serde_json::from_value(json!({"phone_number_id": PHONE, "to": "16505551234", "message": message.clone()}))
                .unwrap();
        let ours = request.validate().is_ok();
        let mut body = message.as_object().unwrap().clone();
        body.insert("messaging_product".into(), json!("whatsapp"));
        body.insert("to".into(), json!("16505551234"));
        let metas = wa_simulator::checks::check(&body).is_ok();
        if ours != metas {
            disagreements.push(format!("case {i}: pipeline {ours}, simulator {metas}: {message}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

/// Events ingest queued, once `count` have arrived (within 5 s).
async fn queued(stack: &Stack, count: usize) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..50 {
        events.extend(stack.drain().await);
        if events.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    events
}

#[tokio::test]
async fn speaks_2026_meta_bsuids_contacts_identity_changes_and_json_errors() {
    let stack = Stack::with_secret(262_144, &secret_json("sim-app-secret", "vt"), None, None).await;
    let url = serve_ingest(stack.ingest()).await;
    let mut config =
        SimConfig { webhook_url: Some(url), status_delay: Duration::from_millis(5), ..SimConfig::default() };
    config.template_categories.insert("otp_login".into(), "authentication".into());
    let (sim, graph) = start(config).await;
    let phone = "16505551234";
    let bsuid = sim.bsuid_of(phone);
    assert!(bsuid.starts_with("US.") && bsuid != sim.bsuid_of("16505551235"));

    // By phone: the answer names the phone and the BSUID; statuses carry contacts, no recipient_user_id.
    let by_phone = graph.send_message(PHONE, TOKEN, &text(phone, "hi")).await.unwrap();
    assert_eq!(by_phone.contacts, [json!({"input": phone, "wa_id": phone, "user_id": bsuid})]);
    let events = queued(&stack, 3).await;
    assert_eq!(events.len(), 3);
    for event in &events {
        assert_eq!(event["contact"]["user_id"], json!(bsuid), "{event}");
        assert_eq!(event["contact"]["wa_id"], phone);
        assert!(event["payload"].get("recipient_user_id").is_none());
    }

    // By BSUID (`recipient`): no wa_id in the answer; statuses carry recipient_user_id.
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "recipient": bsuid,
                      "type": "text", "text": {"body": "hi"}});
    let by_bsuid = graph.send_message(PHONE, TOKEN, &body).await.unwrap();
    assert_eq!(by_bsuid.contacts, [json!({"input": bsuid, "user_id": bsuid})]);
    let events = queued(&stack, 3).await;
    assert!(events.iter().all(|e| e["payload"]["recipient_user_id"] == json!(bsuid) && e["user_id"] == json!(bsuid)));

    // Authentication templates need the phone: 131062 to a BSUID, accepted to the phone.
    let otp = |recipient: (&str, &str)| {
        json!({"messaging_product": "whatsapp", recipient.0: recipient.1, "type": "template",
               "template": {"name": "otp_login", "language": {"code": "en_US"}}})
    };
    assert_eq!(code(graph.send_message(PHONE, TOKEN, &otp(("recipient", &bsuid))).await), 131_062);
    assert!(graph.send_message(PHONE, TOKEN, &otp(("to", phone))).await.is_ok());
    queued(&stack, 3).await;

    // A message Meta accepts, then reports failed: no contacts on the failed status.
    sim.inject(wa_simulator::Fault {
        kind: wa_simulator::FaultKind::FailedStatus { code: 131_026 },
        count: 1,
        to: None,
        endpoint: None,
    });
    let wamid = graph.send_message(PHONE, TOKEN, &text(phone, "undeliverable")).await.unwrap().wamid.unwrap();
    let events = queued(&stack, 1).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["payload"]["id"], json!(wamid));
    assert_eq!(events[0]["payload"]["status"], "failed");
    assert_eq!(events[0]["payload"]["errors"][0]["code"], 131_026);
    assert!(events[0].get("contact").is_none());

    // A username user writes: BSUID only. Then a number change, through the control API.
    sim.withhold_phone("16505557777");
    sim.user_writes(PHONE, "16505557777", "Sam", "hello").await.unwrap();
    let events = queued(&stack, 1).await;
    assert!(events[0]["payload"].get("from").is_none(), "{}", events[0]);
    assert_eq!(events[0]["user_id"], json!(sim.bsuid_of("16505557777")));
    assert!(events[0]["contact"]["profile"]["username"].as_str().unwrap().starts_with('@'));
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{}/_sim/identity_change", sim.base_url()))
        .json(&json!({"phone_number_id": PHONE, "phone": phone, "new_phone": "12195555358"}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let events = queued(&stack, 1).await;
    let system = &events[0]["payload"]["system"];
    assert_eq!(system["type"], "user_changed_number");
    assert_eq!(system["previous_user_id"], json!(bsuid));
    assert_eq!(system["user_id"], json!(sim.bsuid_of("12195555358")));
    assert_eq!(events[0]["payload"]["from"], phone);

    // Paths Meta does not serve: Meta's JSON error, not a bare 404.
    let unknown = http.get(format!("{}/v25.0/{PHONE}/no_such_edge", sim.base_url())).send().await.unwrap();
    assert_eq!(unknown.status(), 400);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], 2500);
    assert_eq!(error["error"]["type"], "OAuthException");
    let wrong_method = http.get(format!("{}/v25.0/{PHONE}/messages", sim.base_url())).send().await.unwrap();
    assert_eq!(wrong_method.status(), 400, "a known path with another method: JSON too");
    assert!(wrong_method.json::<Value>().await.unwrap()["error"]["code"].is_i64());
}
