//! The `SendMessageBatch` client (`wa_infra::sqs_batch`): its requests signed as AWS verifies them
//! (checked with botocore, an implementation independent of ours), its retries as the SDK's
//! standard mode, and its errors, through the fault proxy in front of moto.

use std::process::{Command, Stdio};
use std::time::Instant;

use aws_config::Region;
use aws_credential_types::Credentials;
use serde_json::json;
use wa_core::ports::EventQueue;
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_tests::fault_proxy::{FaultPlan, FaultProxy};
use wa_tests::{create_queue, drain_queue, moto, moto_config, python};

/// Recomputes the request's SigV4 signature with botocore over the headers it says it signed.
const BOTOCORE_CHECK: &str = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
r = json.load(sys.stdin)
auth_header = dict(r["headers"])["authorization"]
fields = dict(part.strip().split("=", 1) for part in auth_header[len("AWS4-HMAC-SHA256 "):].split(","))
signed = fields["SignedHeaders"].split(";")
headers = {name: value for name, value in r["headers"] if name in signed}
request = AWSRequest(method=r["method"], url=r["url"], data=bytes(r["body"]), headers=headers)
request.context["timestamp"] = headers["x-amz-date"]
signer = SigV4Auth(Credentials(r["key"], r["secret"], r["token"]), "sqs", r["region"])
canonical = signer.canonical_request(request)
print(json.dumps({"expected": signer.signature(signer.string_to_sign(request, canonical), request),
                  "got": fields["Signature"], "credential": fields["Credential"], "signed": signed}))
"#;

async fn config(endpoint: &str, token: Option<&str>) -> aws_config::SdkConfig {
    wa_infra::aws::loader_with(|_| None)
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDWATEST", "wa/secret+key", token.map(str::to_owned), None, "t"))
        .load()
        .await
}

#[tokio::test]
async fn requests_are_signed_as_aws_checks_them() {
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::None).await;
    for token in [None, Some("session/token+1")] {
        let sqs = Sqs::new(&config(&proxy.endpoint, token).await).unwrap();
        let bodies = vec![json!({"text": "héllo \"quoted\" \u{1F600}"}).to_string(), "plain".to_owned()];
        SqsQueue::new(&sqs, queue_url.clone(), 262_144).publish(&bodies).await.unwrap();
        let request = proxy.last_batch().expect("a SendMessageBatch reached the proxy");
        let hosts: Vec<&(String, String)> = request.headers.iter().filter(|(name, _)| name == "host").collect();
        assert_eq!(hosts.len(), 1, "one Host header: {hosts:?}");
        let input = json!({
            "method": request.method, "url": format!("{}{}", proxy.endpoint, request.path),
            "headers": request.headers, "body": request.body,
            "key": "AKIDWATEST", "secret": "wa/secret+key", "token": token, "region": "us-east-1",
        });
        let mut child = Command::new(python())
            .args(["-c", BOTOCORE_CHECK])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tests' Python (scripts/test.sh creates its venv)");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.to_string().as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "botocore check failed: {}", String::from_utf8_lossy(&output.stderr));
        let check: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(check["got"], check["expected"], "signature (token {token:?}): {check}");
        assert!(check["credential"].as_str().unwrap().starts_with("AKIDWATEST/"), "{check}");
        assert!(check["credential"].as_str().unwrap().ends_with("/us-east-1/sqs/aws4_request"), "{check}");
        let signed: Vec<&str> = check["signed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for header in ["host", "content-type", "x-amz-date", "x-amz-target"] {
            assert!(signed.contains(&header), "{header} is signed: {signed:?}");
        }
        assert_eq!(signed.contains(&"x-amz-security-token"), token.is_some(), "{signed:?}");
    }
    let received = drain_queue(&aws, &queue_url).await;
    assert_eq!(received.len(), 4, "both batches queued");
    assert!(
        received.iter().any(|m| m.contains("héllo \\\"quoted\\\" \u{1F600}")),
        "bodies arrive unchanged: {received:?}"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_other_errors_are_not() {
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    let bodies: Vec<String> = (0..3).map(|i| format!("{{\"n\":{i}}}")).collect();
    let cases = [
        (500, "InternalError", 2, 3, true),
        (400, "RequestThrottled", 1, 2, true),
        (400, "ThrottlingException", 2, 3, true),
        (503, "ServiceUnavailable", 5, 3, false),
        (400, "QueueDoesNotExist", 5, 1, false),
        (403, "AccessDeniedException", 5, 1, false),
    ];
    for (status, code, failing_calls, expected_calls, succeeds) in cases {
        let plan = FaultPlan::AnswerError { status, code, calls: failing_calls };
        let proxy = FaultProxy::start(&moto().endpoint, plan).await;
        let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
        let queue = SqsQueue::new(&sqs, queue_url.clone(), 262_144);
        let started = Instant::now();
        let result = queue.publish(&bodies).await;
        assert_eq!(proxy.batch_calls(), expected_calls, "{status} {code}: calls");
        assert!(started.elapsed().as_secs() < 8, "{status} {code}: within the 8 s operation timeout");
        if succeeds {
            assert!(result.is_ok(), "{status} {code}: {result:?}");
        } else {
            let error = result.expect_err("an error").to_string();
            assert!(error.contains(code) && error.contains(&status.to_string()), "{status} {code}: {error}");
        }
    }
    let received = drain_queue(&aws, &queue_url).await;
    assert_eq!(received.len(), 9, "the three calls that succeeded queued their 3 events once each");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    // A signed request is never sent on to another address: SQS answers where it is asked.
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::RedirectToUpstream { calls: 5 }).await;
    let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
    let queue = SqsQueue::new(&sqs, queue_url.clone(), 262_144);
    let error = queue.publish(&["{\"n\":1}".to_owned()]).await.expect_err("a redirect is an error").to_string();
    assert!(error.contains("307"), "{error}");
    assert_eq!(proxy.batch_calls(), 1, "not retried: a redirect is answered the same way again");
    assert!(drain_queue(&aws, &queue_url).await.is_empty(), "nothing reached the queue behind the redirect");
}

#[tokio::test]
async fn entries_refused_as_the_senders_fault_are_not_retried() {
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::RefuseFirstEntryAlways).await;
    let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
    let queue = SqsQueue::new(&sqs, queue_url.clone(), 262_144);
    let bodies: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
    let error = queue.publish(&bodies).await.expect_err("one entry refused");
    assert!(matches!(&error, wa_core::ports::QueueError::Refused { failed: 1, total: 10, .. }), "{error:?}");
    assert!(
        error.to_string().contains("InvalidParameterValue (sender fault)") && error.to_string().contains("for good"),
        "{error}"
    );
    assert_eq!(proxy.batch_calls(), 1, "a retry cannot succeed, so none is made");
    assert_eq!(drain_queue(&aws, &queue_url).await.len(), 9, "the others are queued once");
}

#[tokio::test]
async fn groups_share_calls_and_fail_only_for_their_own_bodies() {
    use wa_core::ports::QueueError;
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    // Twelve bodies in seven groups: two calls (ten, then two). The proxy fails the first entry of
    // every call, retries included: group 0's body, and the first of group 6's two.
    let sizes = [1, 2, 1, 3, 1, 2, 2];
    let mut n = 0;
    let groups: Vec<Vec<String>> = sizes
        .iter()
        .map(|&size| {
            (0..size)
                .map(|_| {
                    n += 1;
                    format!("{{\"n\":{n}}}")
                })
                .collect()
        })
        .collect();
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::FailFirstEntryAlways).await;
    let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
    let results = SqsQueue::new(&sqs, queue_url.clone(), 262_144).publish_groups(&groups).await;
    assert_eq!(results.len(), 7);
    assert!(matches!(&results[0], Err(QueueError::Rejected { failed: 1, total: 1, attempts: 4, .. })), "{results:?}");
    assert!(results[1..6].iter().all(Result::is_ok), "{results:?}");
    assert!(matches!(&results[6], Err(QueueError::Rejected { failed: 1, total: 2, .. })), "{results:?}");
    assert_eq!(proxy.batch_calls(), 8, "two calls of up to ten, each offered four times");
    let mut received = drain_queue(&aws, &queue_url).await;
    received.sort();
    let mut expected: Vec<String> = groups.concat();
    expected.retain(|b| b != "{\"n\":1}" && b != "{\"n\":11}");
    expected.sort();
    assert_eq!(received, expected, "every other body queued once");

    // A refusal for good fails its group as such, and is not offered again.
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::RefuseFirstEntryAlways).await;
    let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
    let results = SqsQueue::new(&sqs, queue_url.clone(), 262_144).publish_groups(&groups[..2]).await;
    assert!(matches!(&results[0], Err(QueueError::Refused { failed: 1, total: 1, .. })), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(proxy.batch_calls(), 1);
    assert_eq!(drain_queue(&aws, &queue_url).await.len(), 2);
}

#[tokio::test]
async fn characters_sqs_refuses_are_sent_as_json_escapes() {
    let aws = moto_config().await;
    let queue_url = create_queue(&aws, 262_144).await;
    // The proxy refuses raw U+FFFE / U+FFFF as SQS does (moto takes anything).
    let proxy = FaultProxy::start(&moto().endpoint, FaultPlan::None).await;
    let sqs = Sqs::new(&config(&proxy.endpoint, None).await).unwrap();
    let queue = SqsQueue::new(&sqs, queue_url.clone(), 262_144);
    let values = [json!({"text": "a\u{FFFF}b"}), json!({"name": "\u{FFFE}\u{FFFF}", "ok": "é👋"}), json!({"n": 1})];
    let bodies: Vec<String> = values.iter().map(ToString::to_string).collect();
    assert!(!bodies[0].chars().all(wa_core::queue_text::sqs_allows), "serde_json writes them raw");
    queue.publish(&bodies).await.expect("accepted");
    assert_eq!(proxy.failed_entries(), 0);
    let mut received: Vec<serde_json::Value> =
        drain_queue(&aws, &queue_url).await.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    received.sort_by_key(ToString::to_string);
    let mut expected = values.to_vec();
    expected.sort_by_key(ToString::to_string);
    assert_eq!(received, expected, "the same values");
}

#[tokio::test]
async fn endpoints_are_resolved_as_the_sdk_resolves_them() {
    let base = || {
        aws_config::SdkConfig::builder().region(Region::new("eu-central-1")).credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDWATEST",
                "secret",
                None,
                None,
                "t",
            )),
        )
    };
    let endpoint =
        |config: aws_config::SdkConfig| wa_infra::sqs_batch::BatchClient::new(&config).unwrap().endpoint().to_owned();
    assert_eq!(endpoint(base().build()), "https://sqs.eu-central-1.amazonaws.com/");
    assert_eq!(endpoint(base().use_fips(true).build()), "https://sqs-fips.eu-central-1.amazonaws.com/");
    assert_eq!(endpoint(base().use_dual_stack(true).build()), "https://sqs.eu-central-1.api.aws/");
    assert_eq!(endpoint(base().endpoint_url("http://127.0.0.1:4566").build()), "http://127.0.0.1:4566/");
    // AWS_ENDPOINT_URL_SQS, as aws-config hands it over (its per-service configuration).
    #[derive(Debug)]
    struct SqsVariable;
    impl aws_types::service_config::LoadServiceConfig for SqsVariable {
        fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
            (key.service_id() == "SQS" && key.env() == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:9324".to_owned())
        }
    }
    assert_eq!(endpoint(base().service_config(SqsVariable).build()), "http://127.0.0.1:9324/");
    let no_region = aws_config::SdkConfig::builder().build();
    let error = wa_infra::sqs_batch::BatchClient::new(&no_region).unwrap_err();
    assert!(error.contains("AWS_REGION"), "{error}");
}
