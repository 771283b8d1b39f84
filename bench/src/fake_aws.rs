//! A loopback stand-in for the AWS calls the functions make on their first invocation, answered
//! at once, on a thread of its own: Secrets Manager (`GetSecretValue`, `DescribeSecret`: the secret
//! being rotated, its version `PENDING_VERSION` staged AWSPENDING), SQS (`SendMessageBatch`,
//! `SendMessage`) and DynamoDB (every write succeeds, every read finds nothing: a new table).

use serde_json::{Value, json};

/// The secret JSON it serves.
pub fn secret() -> String {
    json!({"app_id": "1", "app_secret": crate::APP_SECRET, "verify_token": "bench-verify", "access_token": "bench-token"})
        .to_string()
}

/// The version id `DescribeSecret` reports as AWSPENDING (a rotation in progress).
pub const PENDING_VERSION: &str = "bench-pending";

/// Starts it; returns its URL (use as `AWS_ENDPOINT_URL`).
pub fn start() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app =
                axum::Router::new().fallback(|headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let target =
                        headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let answer = if target.ends_with("GetSecretValue") {
                        json!({"ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench", "Name": "bench",
                           "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "SecretString": secret()})
                    } else if target.ends_with("DescribeSecret") {
                        json!({"ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench", "Name": "bench",
                           "RotationEnabled": true,
                           "VersionIdsToStages": {"v1": ["AWSCURRENT"], PENDING_VERSION: ["AWSPENDING"]}})
                    } else if target.starts_with("DynamoDB_") {
                        json!({})
                    } else if target.ends_with("SendMessageBatch") {
                        let ok: Vec<Value> = request["Entries"]
                            .as_array()
                            .map(|e| {
                                e.iter()
                                    .map(|x| json!({"Id": x["Id"], "MessageId": "m", "MD5OfMessageBody": "0"}))
                                    .collect()
                            })
                            .unwrap_or_default();
                        json!({"Successful": ok, "Failed": []})
                    } else {
                        json!({"MessageId": "m", "MD5OfMessageBody": "0"})
                    };
                    ([("content-type", "application/x-amz-json-1.1")], answer.to_string())
                });
            axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
        });
    });
    url
}
