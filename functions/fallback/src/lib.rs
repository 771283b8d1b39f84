//! The fallback function: when a request that carries `fallback_channels` ends undelivered, its SMS
//! and/or e-mail go out, once per request and channel, and the result is published.
//!
//! Input: the fallback queue, filled by a rule on the pipeline's bus with the `send_result` events
//! that did not reach WhatsApp (`failed`, `window_closed`) and every `delivery_failure`; each
//! message is a bus entry (or, in the local stack, the bare event). Per event: the request is read
//! from its send record in the state table (the sender keeps it there when it has fallback
//! channels; without a record or channels there is nothing to do); the person's consent and the
//! template's category are gathered; [`wa_core::fallback::decide`] says which channels go; each goes
//! under a claim of its own (`fallback:<channel>:<key>`), so redeliveries of the event — or a
//! `send_result` and a `delivery_failure` of one request — send it once. A send that may have gone
//! out (a timeout, a provider error after the request left) or a claim taken over from an attempt
//! that stopped mid-send is never repeated: it ends as `fallback_failed` with the reason. Results:
//! `fallback_sent`, `fallback_failed`, `fallback_skipped` on the bus (schema
//! `schemas/fallback-result.v1.json`). A record that cannot be handled now (the table or the
//! provider unavailable, the bus refusing) is retried, and after the queue's receive limit lands in
//! its DLQ: nothing is dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;
use wa_core::fallback::{self, Channel, FallbackResult, Plan, Trigger};
use wa_core::identity;
use wa_core::ports::{Claim, ConversationStore, EventQueue, IdempotencyStore, Notifier, NotifyError, StoreError};
use wa_core::send::SendRequest;
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "fallback";
/// How long fallback records live (as send records: 30 days).
pub const RECORD_SECONDS: u64 = 30 * 86_400;

/// What the fallback function needs.
pub struct Fallback<S, Q, N> {
    /// The state table: send records, fallback claims, conversations, the template registry.
    pub state: S,
    /// Where results go (the bus).
    pub events: Q,
    /// SMS and e-mail.
    pub notifier: N,
}

/// What became of one queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Done,
    Retry,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The claim key of one channel (or of the skip notice) of a request.
fn claim_key(channel: Option<Channel>, idempotency_key: &str) -> String {
    format!("fallback:{}:{idempotency_key}", channel.map_or("skipped", Channel::as_str))
}

impl<S, Q, N> Fallback<S, Q, N>
where
    S: IdempotencyStore + ConversationStore,
    Q: EventQueue,
    N: Notifier,
{
    /// Handles one SQS batch; `deadline_ms` (Unix ms) bounds the claims.
    pub async fn handle(&self, event: &SqsEvent, deadline_ms: u64) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            let Some(id) = record.message_id.as_deref().filter(|id| !id.is_empty()) else {
                tracing::error!("a record without a message id was skipped");
                continue;
            };
            if self.process(record.body.as_deref().unwrap_or_default(), deadline_ms).await == Verdict::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn process(&self, body: &str, deadline_ms: u64) -> Verdict {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            // Never put there by the pipeline: kept (retried into the DLQ) for a person to see.
            tracing::error!(bytes = body.len(), "the fallback queue holds a message that is not JSON");
            telemetry::emit(FUNCTION, None, &[("UnreadableEvents", 1.0)]);
            return Verdict::Retry;
        };
        let Some(trigger) = fallback::trigger(&value) else {
            return Verdict::Done;
        };
        let stored = match self.state.stored_request(&trigger.idempotency_key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Verdict::Done,
            Err(error) => {
                tracing::warn!(%error, "cannot read the send record; retrying later");
                return Verdict::Retry;
            }
        };
        let request = match SendRequest::from_json(&stored) {
            Ok(request) => request,
            Err(violation) => {
                tracing::error!(%violation, "the send record keeps a request that does not parse; no fallback");
                telemetry::emit(FUNCTION, None, &[("UnreadableEvents", 1.0)]);
                return Verdict::Done;
            }
        };
        let Some(channels) = request.fallback_channels.clone() else {
            return Verdict::Done;
        };
        let plan = match self.plan(&trigger, &request, &channels).await {
            Ok(plan) => plan,
            Err(error) => {
                tracing::warn!(%error, "cannot read the conversation; retrying later");
                return Verdict::Retry;
            }
        };
        match plan {
            Plan::Skip(reason) => {
                tracing::info!(trigger = trigger.cause.as_str(), reason, "fallback skipped");
                telemetry::emit(FUNCTION, None, &[("FallbacksSkipped", 1.0)]);
                let mut result = FallbackResult::new("fallback_skipped", &trigger, &request, None, now_ms());
                result.reason = Some(reason.to_owned());
                self.once(&trigger, &request, None, deadline_ms, Some(result)).await
            }
            Plan::Send(list) => {
                let mut verdict = Verdict::Done;
                for channel in list {
                    if self.once(&trigger, &request, Some(channel), deadline_ms, None).await == Verdict::Retry {
                        verdict = Verdict::Retry;
                    }
                }
                verdict
            }
        }
    }

    /// The facts and the decision.
    async fn plan(
        &self,
        trigger: &Trigger,
        request: &SendRequest,
        channels: &fallback::FallbackChannels,
    ) -> Result<Plan, StoreError> {
        let (opted_out, learned) = match request.to.as_deref() {
            Some(to) => {
                let person = identity::resolve(&self.state, &request.phone_number_id, to).await?;
                let learned = match wa_core::policy::template_needed(request, &person.facts) {
                    Some((name, language)) => wa_core::templates::learned_category(&self.state, name, language).await?,
                    None => None,
                };
                (person.facts.marketing_opt_out, learned)
            }
            None => (false, None),
        };
        let marketing = fallback::is_marketing(request, learned.as_deref());
        Ok(fallback::decide(trigger, channels, marketing, opted_out))
    }

    /// One channel (or the skip notice, `ready` given) under its claim: sent and published once.
    async fn once(
        &self,
        trigger: &Trigger,
        request: &SendRequest,
        channel: Option<Channel>,
        deadline_ms: u64,
        ready: Option<FallbackResult>,
    ) -> Verdict {
        let key = claim_key(channel, &trigger.idempotency_key);
        let result = match self.state.claim(&key, now_ms(), deadline_ms).await {
            Ok(Claim::Acquired) => match (ready, channel) {
                (Some(result), _) => result,
                (None, Some(channel)) => match self.deliver(trigger, request, channel).await {
                    Some(result) => result,
                    None => {
                        if let Err(error) = self.state.release(&key).await {
                            tracing::warn!(%error, "cannot release the fallback claim; the retry waits for it to expire");
                        }
                        return Verdict::Retry;
                    }
                },
                (None, None) => return Verdict::Done,
            },
            Ok(Claim::Reclaimed) => {
                let mut result = FallbackResult::new("fallback_failed", trigger, request, channel, now_ms());
                result.reason = Some(INTERRUPTED.to_owned());
                if channel.is_some() {
                    tracing::warn!(
                        channel = channel.map(Channel::as_str),
                        "an earlier fallback attempt stopped while sending; not sent again"
                    );
                    telemetry::emit(FUNCTION, None, &[("FallbacksInterrupted", 1.0)]);
                }
                ready.unwrap_or(result)
            }
            Ok(Claim::InProgress) => return Verdict::Retry,
            Ok(Claim::Completed { outcome, published, owner_until_ms }) => {
                if published {
                    return Verdict::Done;
                }
                if now_ms() <= owner_until_ms {
                    return Verdict::Retry;
                }
                tracing::warn!("publishing a fallback result whose earlier publication is unconfirmed");
                return self.publish(&key, &outcome).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim the fallback; retrying later");
                return Verdict::Retry;
            }
        };
        let Ok(text) = serde_json::to_string(&result) else {
            return Verdict::Retry;
        };
        let expires = now_ms() / 1000 + RECORD_SECONDS;
        let mut recorded = false;
        for attempt in 0..3u64 {
            match self.state.complete(&key, &text, None, None, expires).await {
                Ok(()) => {
                    recorded = true;
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "cannot record a fallback result");
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                }
            }
        }
        if !recorded {
            // The claim stays until it expires; the retry then finds it taken over and does not
            // send again.
            return Verdict::Retry;
        }
        self.publish(&key, &text).await
    }

    /// Sends one channel: the result to record, or `None` when nothing was sent and a retry may.
    async fn deliver(&self, trigger: &Trigger, request: &SendRequest, channel: Channel) -> Option<FallbackResult> {
        let channels = request.fallback_channels.as_ref()?;
        let sent = match channel {
            Channel::Sms => match &channels.sms {
                Some(sms) => self.notifier.send_sms(sms).await,
                None => return None,
            },
            Channel::Email => match &channels.email {
                Some(email) => self.notifier.send_email(email).await,
                None => return None,
            },
        };
        let now = now_ms();
        match sent {
            Ok(id) => {
                tracing::info!(channel = channel.as_str(), trigger = trigger.cause.as_str(), "fallback sent");
                telemetry::emit(FUNCTION, Some(("Channel", channel.as_str())), &[("FallbacksSent", 1.0)]);
                let mut result = FallbackResult::new("fallback_sent", trigger, request, Some(channel), now);
                result.provider_message_id = Some(id);
                Some(result)
            }
            Err(NotifyError::Unavailable(reason)) => {
                tracing::warn!(channel = channel.as_str(), %reason, "fallback provider unavailable; retrying later");
                None
            }
            Err(error) => {
                tracing::warn!(channel = channel.as_str(), %error, "fallback not sent");
                telemetry::emit(FUNCTION, Some(("Channel", channel.as_str())), &[("FallbacksFailed", 1.0)]);
                let mut result = FallbackResult::new("fallback_failed", trigger, request, Some(channel), now);
                result.reason = Some(match error {
                    NotifyError::Ambiguous(reason) => format!("unknown: {reason}; not sent again"),
                    other => other.to_string(),
                });
                Some(result)
            }
        }
    }

    async fn publish(&self, key: &str, text: &str) -> Verdict {
        if let Err(error) = self.events.publish(&[text.to_owned()]).await {
            tracing::warn!(%error, "cannot publish the fallback result; the redelivery will");
            return Verdict::Retry;
        }
        if let Err(error) = self.state.mark_published(key).await {
            tracing::warn!(%error, "fallback result published but not marked; a redelivery may publish it again");
        }
        Verdict::Done
    }
}

/// The reason of a fallback whose earlier attempt stopped mid-send.
pub const INTERRUPTED: &str = "unknown: an earlier attempt stopped while sending; not sent again";
