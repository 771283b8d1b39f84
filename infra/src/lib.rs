//! Adapters behind `wa-core`'s ports: SQS, S3, Secrets Manager (cached), configuration from the
//! environment, and telemetry (JSON logs, EMF metrics).

pub mod aws;
pub mod config;
pub mod dynamo;
pub mod eventbridge;
pub mod fallback;
pub mod graph;
pub mod limits;
pub mod media;
pub mod meta_admin;
pub mod s3;
pub mod secrets;
pub mod sqs;
pub mod sqs_batch;
pub mod telemetry;
pub mod tls;
pub mod vault;
