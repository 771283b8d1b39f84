//! A loopback stand-in for the AWS calls the functions make on their first invocation, answered
//! at once, on a thread of its own: Secrets Manager (`GetSecretValue`, `DescribeSecret`: the secret
//! being rotated, its version `PENDING_VERSION` staged AWSPENDING), SQS (`SendMessageBatch`,
//! `SendMessage`), DynamoDB (every write succeeds, every read finds nothing: a new table) and S3's
//! multipart upload (no object exists; parts are counted and dropped: [`s3_bytes`]).

use serde_json::{Value, json};

/// The secret JSON it serves.
pub fn secret() -> String {
    json!({"app_id": "1", "app_secret": crate::APP_SECRET, "verify_token": "bench-verify", "access_token": "bench-token"})
        .to_string()
}

/// The version id `DescribeSecret` reports as AWSPENDING (a rotation in progress).
pub const PENDING_VERSION: &str = "bench-pending";

static S3_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static S3_COMPLETED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// (bytes received in upload parts, multipart uploads completed) so far.
pub fn s3_bytes() -> (u64, u64) {
    use std::sync::atomic::Ordering;
    (S3_BYTES.load(Ordering::Relaxed), S3_COMPLETED.load(Ordering::Relaxed))
}

/// S3 (REST, path style): HEAD finds nothing, multipart uploads are accepted and their parts counted.
fn s3(method: &axum::http::Method, uri: &axum::http::Uri, body: &[u8]) -> axum::response::Response {
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;
    let query = uri.query().unwrap_or_default();
    let xml = |text: String| ([("content-type", "application/xml")], text).into_response();
    match *method {
        axum::http::Method::HEAD => axum::http::StatusCode::NOT_FOUND.into_response(),
        axum::http::Method::POST if query.contains("uploads") => xml(
            "<InitiateMultipartUploadResult><Bucket>bench</Bucket><Key>k</Key><UploadId>bench-upload</UploadId></InitiateMultipartUploadResult>".into(),
        ),
        axum::http::Method::PUT if query.contains("partNumber") => {
            S3_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
            ([("etag", "\"bench-part\"")], "").into_response()
        }
        axum::http::Method::POST if query.contains("uploadId") => {
            S3_COMPLETED.fetch_add(1, Ordering::Relaxed);
            xml("<CompleteMultipartUploadResult><Bucket>bench</Bucket><Key>k</Key><ETag>\"bench\"</ETag></CompleteMultipartUploadResult>".into())
        }
        axum::http::Method::DELETE => axum::http::StatusCode::NO_CONTENT.into_response(),
        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// The AWS SDK's configuration for the stand-in at `endpoint` (fixed region and credentials,
/// nothing read from the environment).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    wa_infra::aws::loader_with(|_| None)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new("bench", "bench", None, None, "bench"))
        .load()
        .await
}

/// Starts it; returns its URL (use as `AWS_ENDPOINT_URL`).
pub fn start() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new()
                .fallback(
                    |method: axum::http::Method,
                     uri: axum::http::Uri,
                     headers: axum::http::HeaderMap,
                     body: axum::body::Bytes| async move {
                        use axum::response::IntoResponse;
                        let target =
                            headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                        if target.is_empty() && !headers.contains_key("content-type")
                            || uri.path().starts_with("/bench/")
                        {
                            return s3(&method, &uri, &body);
                        }
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
                        ([("content-type", "application/x-amz-json-1.1")], answer.to_string()).into_response()
                    },
                )
                .layer(axum::extract::DefaultBodyLimit::disable());
            axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
        });
    });
    url
}
