//! Several Meta apps in one deployment: webhooks routed by path to their app's secret, sends routed
//! by business number to the owning app's token.

use std::collections::BTreeMap;

use serde_json::json;
use wa_core::apps::Apps;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_simulator::{SimConfig, TokenInfo};
use wa_tests::send_stack::{SendStack, mechanics, now_ms};
use wa_tests::{apigw_request_at, create_secret, esm};

use crate::stack::{APP_SECRET, Stack, VERIFY_TOKEN};

const OTHER_APP: &str = "2220002220";

fn other_secret(access_token: &str) -> String {
    json!({"app_id": OTHER_APP, "app_secret": "other-app-secret-value", "verify_token": "other-verify-token",
           "access_token": access_token})
    .to_string()
}

fn routed(
    aws: &aws_config::SdkConfig,
    default: &str,
    other: &str,
    numbers: &[(&str, &str)],
) -> Apps<CachedSecrets<SecretsManagerFetch>> {
    let source = |id: &str| {
        CachedSecrets::new(
            SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(aws), id.to_owned()),
            CachePolicy::default(),
        )
    };
    Apps {
        default: source(default),
        others: BTreeMap::from([(OTHER_APP.to_owned(), source(other))]),
        numbers: numbers.iter().map(|(n, a)| ((*n).to_owned(), (*a).to_owned())).collect(),
    }
}

#[tokio::test]
async fn webhooks_are_verified_with_their_own_apps_secret() {
    let stack = Stack::new(262_144).await;
    let other = create_secret(&stack.aws, &other_secret("EAAother"), None, None).await;
    let deps = stack.ingest();
    let deps = webhook_ingest::Ingest {
        queue: deps.queue,
        blobs: deps.blobs,
        secrets: routed(&stack.aws, &stack.secret_id, &other, &[]),
        max_event_age_s: deps.max_event_age_s,
    };
    let body = std::fs::read(wa_tests::repo_root().join("fixtures/meta/webhooks/text-message.json")).unwrap();
    let post = |path: &str, secret: &str| {
        let signature = wa_core::signature::sign(secret.as_bytes(), &body);
        apigw_request_at(path, "POST", "", &[("x-hub-signature-256", &signature)], Some(&body), false)
    };
    let status = |path: &str, secret: &str| {
        let request = post(path, secret);
        let deps = &deps;
        async move { webhook_ingest::handle(deps, &request).await.status().as_u16() }
    };
    assert_eq!(status("/webhook", APP_SECRET).await, 200, "the default app");
    assert_eq!(status("/webhook/1234567890", APP_SECRET).await, 200, "the default app by its id");
    assert_eq!(status(&format!("/webhook/{OTHER_APP}"), "other-app-secret-value").await, 200, "the other app");
    assert_eq!(status(&format!("/webhook/{OTHER_APP}"), APP_SECRET).await, 401, "another app's secret");
    assert_eq!(status("/webhook", "other-app-secret-value").await, 401);
    assert_eq!(status("/webhook/999", APP_SECRET).await, 404, "an app not served here");
    assert_eq!(status("/hooks", APP_SECRET).await, 404);
    assert_eq!(stack.drain().await.len(), 3, "three accepted webhooks, one event each");

    let apps = routed(&stack.aws, &stack.secret_id, &other, &[]);
    let get = |path: &str, token: &str| {
        let query = format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=77");
        apigw_request_at(path, "GET", &query, &[], None, false)
    };
    let verify = |path: &str, token: &str| {
        let request = get(path, token);
        let apps = &apps;
        async move { webhook_verify::handle(apps, &request).await.status().as_u16() }
    };
    assert_eq!(verify("/webhook", VERIFY_TOKEN).await, 200);
    assert_eq!(verify(&format!("/webhook/{OTHER_APP}"), "other-verify-token").await, 200);
    assert_eq!(verify(&format!("/webhook/{OTHER_APP}"), VERIFY_TOKEN).await, 403);
    assert_eq!(verify("/webhook/999", VERIFY_TOKEN).await, 404);
}

#[tokio::test]
async fn each_number_sends_with_its_apps_token() {
    let stack = SendStack::new(SimConfig::default()).await;
    let other = create_secret(&stack.aws, &other_secret("EAAotherapptoken"), None, None).await;
    stack.sim.set_token("EAAotherapptoken", TokenInfo::whatsapp(OTHER_APP, 0));
    // The default app's token is revoked: only the number owned by the other app can send.
    let mut revoked = TokenInfo::whatsapp("1", 0);
    revoked.is_valid = false;
    stack.sim.set_token("sim-access-token", revoked);
    let secrets = routed(&stack.aws, &stack.secret_id, &other, &[("900000001", OTHER_APP)]);
    let sender = stack.sender_routed(stack.graph(), secrets, mechanics());
    for (phone, key) in [("900000001", "other-app"), ("900000002", "default-app")] {
        let request = json!({"phone_number_id": phone, "to": "16505550001",
                             "message": {"type": "text", "text": {"body": "hi"}}, "idempotency_key": key});
        stack.enqueue(&request, key).await;
        let batch = esm::receive(&stack.sqs, &stack.outbound).await.unwrap();
        let _ = sender.handle(&batch.event, now_ms() + 30_000).await;
        esm::settle(&stack.sqs, &stack.outbound, &batch, &Default::default()).await;
    }
    let accepted = stack.sim.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0].phone_number_id, "900000001");
    let rejected: Vec<_> = stack.sim.seen().into_iter().filter(|s| s.code == Some(190)).collect();
    assert!(rejected.iter().all(|s| s.phone_number_id == "900000002") && !rejected.is_empty(), "{rejected:?}");
}
