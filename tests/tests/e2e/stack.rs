//! A deployed-like stack on moto: queue, bucket, secret, and the ingest dependencies over them.

use aws_config::SdkConfig;
use wa_infra::s3::S3Blobs;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::sqs::{Sqs, SqsQueue};
use wa_tests::{create_bucket, create_queue, create_secret, moto_config, sdk_config, secret_json};
use webhook_ingest::Ingest;

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";

pub type Deps = Ingest<SqsQueue, S3Blobs, CachedSecrets<SecretsManagerFetch>>;

pub struct Stack {
    pub aws: SdkConfig,
    pub queue_url: String,
    pub bucket: String,
    pub secret_id: String,
    pub max_message_bytes: usize,
}

impl Stack {
    /// A queue whose `MaximumMessageSize` is `max_message_bytes`, a bucket, and a secret.
    pub async fn new(max_message_bytes: usize) -> Self {
        Self::with_secret(max_message_bytes, &secret_json(APP_SECRET, VERIFY_TOKEN), None, None).await
    }

    pub async fn with_secret(
        max_message_bytes: usize,
        current: &str,
        previous: Option<&str>,
        pending: Option<&str>,
    ) -> Self {
        let aws = moto_config().await;
        let queue_url = create_queue(&aws, max_message_bytes).await;
        let bucket = create_bucket(&aws).await;
        let secret_id = create_secret(&aws, current, previous, pending).await;
        Self { aws, queue_url, bucket, secret_id, max_message_bytes }
    }

    pub fn secrets_with(&self, aws: &SdkConfig) -> CachedSecrets<SecretsManagerFetch> {
        let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(aws), self.secret_id.clone());
        CachedSecrets::new(fetch, CachePolicy::default())
    }

    pub fn secrets(&self) -> CachedSecrets<SecretsManagerFetch> {
        self.secrets_with(&self.aws)
    }

    /// The ingest dependencies, all on moto.
    pub fn ingest(&self) -> Deps {
        self.ingest_via(&self.aws, &self.aws, &self.aws)
    }

    /// The ingest dependencies with SQS, S3 and Secrets Manager reached through the given configs
    /// (a fault proxy, or a closed port).
    pub fn ingest_via(&self, sqs: &SdkConfig, s3: &SdkConfig, secrets: &SdkConfig) -> Deps {
        Ingest {
            queue: SqsQueue::new(&Sqs::new(sqs).expect("SQS clients"), self.queue_url.clone(), self.max_message_bytes),
            blobs: S3Blobs::new(wa_infra::aws::s3_client(s3), self.bucket.clone()),
            secrets: self.secrets_with(secrets),
            // Meta's examples are dated 2025, past the production window (8 days): the window has
            // its own test (`ingest::replayed_old_webhooks_are_acknowledged_and_dropped`).
            max_event_age_s: None,
        }
    }

    pub async fn drain(&self) -> Vec<serde_json::Value> {
        wa_tests::drain_queue(&self.aws, &self.queue_url)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).expect("queue message is JSON"))
            .collect()
    }

    pub async fn raw_messages(&self) -> Vec<String> {
        wa_tests::drain_queue(&self.aws, &self.queue_url).await
    }
}

/// SDK configuration pointing at a loopback port where nothing listens.
pub async fn closed_port_config() -> SdkConfig {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    sdk_config(&format!("http://127.0.0.1:{port}")).await
}
