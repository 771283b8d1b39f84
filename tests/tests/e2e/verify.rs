//! GET /webhook against Secrets Manager on moto.

use lambda_http::Body;
use wa_tests::{apigw_request, secret_json};

use crate::stack::{Stack, VERIFY_TOKEN, closed_port_config};

fn get(query: &str) -> lambda_http::Request {
    apigw_request("GET", query, &[], None, false)
}

fn text(body: &Body) -> String {
    String::from_utf8_lossy(body.as_ref()).into_owned()
}

#[tokio::test]
async fn current_token_gets_the_challenge_verbatim() {
    let stack = Stack::new(262_144).await;
    let secrets = stack.secrets();
    let query = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444");
    let response = webhook_verify::handle(&secrets, &get(&query)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(text(response.body()), "1158201444");
    assert_eq!(response.headers()["content-type"], "text/plain");

    // Percent-encoded challenge is decoded and echoed as Meta sent it.
    let query = format!("hub.mode=subscribe&hub.challenge=a%20b%2Bc&hub.verify_token={VERIFY_TOKEN}");
    let response = webhook_verify::handle(&secrets, &get(&query)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(text(response.body()), "a b+c");
}

#[tokio::test]
async fn pending_token_is_accepted_during_a_rotation() {
    let stack =
        Stack::with_secret(262_144, &secret_json("s", "current-vt"), None, Some(&secret_json("s", "pending-vt"))).await;
    let secrets = stack.secrets();
    for token in ["current-vt", "pending-vt"] {
        let query = format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42");
        let response = webhook_verify::handle(&secrets, &get(&query)).await;
        assert_eq!(response.status(), 200, "{token}");
        assert_eq!(text(response.body()), "42");
    }
}

#[tokio::test]
async fn a_rotation_started_after_caching_is_seen() {
    let stack = Stack::new(262_144).await;
    let secrets = stack.secrets();
    let ok = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1");
    assert_eq!(webhook_verify::handle(&secrets, &get(&ok)).await.status(), 200);
    // The rotation's createSecret writes AWSPENDING; setSecret makes Meta call us with it at once.
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(secret_json("s", "fresh-pending"))
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let query = "hub.mode=subscribe&hub.verify_token=fresh-pending&hub.challenge=2";
    let response = webhook_verify::handle(&secrets, &get(query)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(text(response.body()), "2");
}

#[tokio::test]
async fn everything_else_is_403_without_the_challenge() {
    let stack = Stack::new(262_144).await;
    let secrets = stack.secrets();
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=CHALLENGE".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=CHALLENGE"),
        "hub.mode=subscribe&hub.challenge=CHALLENGE".to_owned(),
        format!("hub.verify_token={VERIFY_TOKEN}&hub.challenge=CHALLENGE"),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge="),
        format!("hub.mode=subscribe&hub.verify_token={}&hub.challenge=CHALLENGE", VERIFY_TOKEN.to_uppercase()),
        String::new(),
    ] {
        let response = webhook_verify::handle(&secrets, &get(&query)).await;
        assert_eq!(response.status(), 403, "{query}");
        assert!(!text(response.body()).contains("CHALLENGE"));
    }
    let post = apigw_request("POST", "hub.mode=subscribe", &[], Some(b"{}"), false);
    assert_eq!(webhook_verify::handle(&secrets, &post).await.status(), 405);
}

#[tokio::test]
async fn secrets_manager_down_is_503_not_403() {
    let stack = Stack::new(262_144).await;
    let secrets = stack.secrets_with(&closed_port_config().await);
    let query = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1");
    let response = webhook_verify::handle(&secrets, &get(&query)).await;
    assert_eq!(response.status(), 503);
}

/// A request as a Lambda function URL delivers it (payload format 2.0, route `$default`).
fn function_url_request(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    let mut header_map: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    header_map.insert("host".into(), "abcdefghij.lambda-url.us-east-1.on.aws".into());
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/webhook", "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1",
                     "sourceIp": "173.252.127.1", "userAgent": "facebookexternalua"},
            "requestId": "req-url", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000u64
        },
        "body": body, "isBase64Encoded": false
    });
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event).expect("a function URL event");
    request.into()
}

#[tokio::test]
async fn one_function_behind_a_function_url_answers_the_verification_and_the_webhooks() {
    let stack = Stack::new(262_144).await;
    let deps = stack.ingest();
    let query = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444");
    let response = webhook_ingest::serve(&deps, &function_url_request("GET", &query, &[], None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(text(response.body()), "1158201444");
    let wrong = "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444";
    let response = webhook_ingest::serve(&deps, &function_url_request("GET", wrong, &[], None)).await;
    assert_eq!(response.status(), 403);
    assert!(!text(response.body()).contains("1158201444"), "never echoed");

    let body = String::from_utf8(wa_tests::webhook_examples().into_iter().next().expect("an example").1).unwrap();
    let signature = wa_core::signature::sign(crate::stack::APP_SECRET.as_bytes(), body.as_bytes());
    let headers = [("x-hub-signature-256", signature.as_str()), ("content-type", "application/json")];
    let response = webhook_ingest::serve(&deps, &function_url_request("POST", "", &headers, Some(&body))).await;
    assert_eq!(response.status(), 200, "{}", text(response.body()));
    assert!(!wa_tests::drain_queue(&stack.aws, &stack.queue_url).await.is_empty(), "its events queued");
    let response = webhook_ingest::serve(&deps, &function_url_request("POST", "", &[], Some(&body))).await;
    assert_eq!(response.status(), 401, "unsigned");
    let response = webhook_ingest::serve(&deps, &function_url_request("PUT", "", &headers, Some(&body))).await;
    assert_eq!(response.status(), 405);
}
