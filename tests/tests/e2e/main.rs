//! End-to-end tests on loopback: the Lambda handlers, fed API Gateway v2 events, against moto
//! server's SQS, S3 and Secrets Manager. One binary, one moto server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apps;
mod campaign;
mod fanout;
mod identity;
mod ingest;
mod media;
mod operator;
mod processor;
mod rotation;
mod sender;
mod simulator;
mod sqs_client;
mod stack;
mod state;
mod templates;
mod verify;
