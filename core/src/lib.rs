//! The WhatsApp Cloud API domain, pure: webhook types, signature check, verification handshake,
//! inbound events, secrets model, and the traits (ports) the adapters in `wa-infra` implement.
//! No AWS crates and no I/O here.

pub mod apps;
pub mod campaign;
pub mod conversation;
pub mod event;
pub mod fallback;
pub mod fanout;
pub mod graph_error;
pub mod hold;
pub mod identity;
pub mod limit;
pub mod media;
pub mod outcome;
pub mod policy;
pub mod ports;
pub mod queue_text;
pub mod ratelimit;
pub mod replay;
pub mod rotation;
pub mod secrets;
pub mod send;
pub mod signature;
pub mod subscription;
pub mod template_lint;
pub mod templates;
pub mod webhook;
