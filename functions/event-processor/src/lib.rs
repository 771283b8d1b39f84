//! The event processor: inbound queue → conversation state in DynamoDB → events queue.
//!
//! For each inbound event (claim-checked payloads are fetched from S3 first): a dedupe claim on
//! the event id (duplicates — sequential, concurrent or days later — produce exactly one
//! downstream event; records live 14 days); then the facts: every payload that names a person by
//! more than one id (phone, BSUID, parent BSUID) links them, and identity-change system messages
//! move the person to their new ids ([`wa_core::identity`]); a user's message moves the
//! customer-service window forward and may carry a STOP/START keyword; a status moves the message
//! forward (never back) and counts a billable message once in the monthly cost ledger; a `failed`
//! status of a message we sent adds one `delivery_failure` message for its request (131047 in it
//! closes the window); a `user_preferences` change or a 131050 error records a marketing opt-out.
//! A payload the processor cannot interpret (a status without `status`, a message without
//! `type`) changes no state and is forwarded unchanged, with a warning and a metric; then the event is
//! forwarded to the events queue for business consumers (stored in S3 and forwarded as a
//! claim-check reference when larger than a message of that queue). A record that cannot be handled is
//! retried and, after the queue's receive limit, lands in the inbound DLQ: nothing is dropped.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use wa_core::conversation::{Consent, OptOutKeywords, StatusUpdate, month_of, pricing_category};
use wa_core::event::{EventKind, InboundEvent, claim_check, resolve_event};
use wa_core::graph_error;
use wa_core::identity::{self, Ids};
use wa_core::limit::Portfolios;
use wa_core::outcome::{DeliveryFailure, FailedStatus};
use wa_core::ports::{BlobStore, Claim, ConversationStore, EventQueue, IdempotencyStore, LimitStore, QueueError};
use wa_core::queue_text::sqs_safe;
use wa_core::webhook::{Message, Status, StatusKind, UserPreferencesValue};
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "event-processor";
/// How long processed event ids are remembered (Meta redelivers for up to 7 days).
pub const DEDUPE_SECONDS: u64 = 14 * 86_400;

/// What the processor needs.
pub struct Processor<I, C, Q, B> {
    /// Dedupe claims.
    pub dedupe: I,
    /// Conversation facts.
    pub state: C,
    /// The events queue.
    pub events: Q,
    /// Claim-checked payloads.
    pub blobs: B,
    /// STOP / START keywords.
    pub keywords: OptOutKeywords,
    /// The media fetcher's queue: media messages go there (the fetcher forwards them with their
    /// stored file); `None`, they go to the events queue with Meta's media id only.
    pub media: Option<Q>,
    /// Which portfolio a WABA's messaging limit counts in (`PORTFOLIOS`).
    pub portfolios: Portfolios,
    /// Business numbers whose display number this process has recorded (once per number per
    /// process: quality webhooks name a number by its display number only).
    pub numbers_seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<I, C, Q, B> Processor<I, C, Q, B>
where
    C: ConversationStore + LimitStore,
{
    /// Meta's limits ([`wa_core::limit`]): a quality or capability webhook's tier is recorded for
    /// the WABA's portfolio, a `THROUGHPUT_UPGRADE` for the number it names; a business number
    /// seen in a webhook's metadata is recorded by its display number once per process, so that
    /// an upgrade, which names only that, reaches the senders.
    async fn learn_limits(&self, event: &InboundEvent<'_>) -> Result<(), String> {
        if let (Some(phone), Some(display)) = (&event.phone_number_id, &event.display_phone_number) {
            // Taken before the write, so that the records of one batch (handled concurrently)
            // write it once; given back when the write fails.
            let first = self.numbers_seen.lock().is_ok_and(|mut seen| seen.insert(phone.clone()));
            if first && let Err(error) = self.state.record_number(display, Some(phone), None).await {
                if let Ok(mut seen) = self.numbers_seen.lock() {
                    seen.remove(phone);
                }
                return Err(error.to_string());
            }
        }
        if event.field != "phone_number_quality_update" && event.field != "business_capability_update" {
            return Ok(());
        }
        let value: Value = event.payload_as().map_err(|e| e.to_string())?;
        let (tier, upgrade) = wa_core::limit::from_webhook(&event.field, &value);
        let at = event.timestamp.and_then(|t| u64::try_from(t).ok()).unwrap_or(event.received_at / 1000);
        if let Some(tier) = tier {
            let portfolio = self.portfolios.of(&event.waba_id);
            self.state.record_tier(portfolio, tier, at).await.map_err(|e| e.to_string())?;
            tracing::info!(tier = tier.stored(), "messaging limit announced");
            telemetry::emit(FUNCTION, None, &[("LimitAnnouncements", 1.0)]);
        }
        let display = value.get("display_phone_number").and_then(|d| match d {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        if let (true, Some(display)) = (upgrade, display) {
            self.state
                .record_number(&display, None, Some(wa_core::limit::UPGRADED_RATE))
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("throughput upgrade: the number sends at 1,000 messages/s");
            telemetry::emit(FUNCTION, None, &[("ThroughputUpgrades", 1.0)]);
        }
        Ok(())
    }

    /// The four template webhooks fill the template registry ([`wa_core::templates::from_webhook`]):
    /// status, category, quality, parameter count; a status update may carry a category too.
    async fn learn_template_category(&self, event: &InboundEvent<'_>) -> Result<(), String> {
        let value: Value = event.payload_as().map_err(|e| e.to_string())?;
        if let Some((name, language, update)) = wa_core::templates::from_webhook(&event.field, &value) {
            self.state.record_template(&name, &language, &update).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let (Some(name), Some(category)) = (
            text("message_template_name"),
            text("new_category").or_else(|| text("message_template_category")).or_else(|| text("category")),
        ) else {
            return Ok(());
        };
        let language = text("message_template_language").unwrap_or("*");
        self.state
            .record_template_category(name, language, &category.to_ascii_lowercase())
            .await
            .map_err(|e| e.to_string())
    }
}

/// The key of a processed event's record that holds the conversation it was forwarded with.
const SPLICED: &str = "spliced_conversation";
/// The key of a processed event's record that holds the delivery failure it adds (a failed status).
const FAILURE: &str = "delivery_failure";
/// The key of a processed event's record that says it goes to the media fetcher.
const MEDIA: &str = "media";

/// How a forwarded event is recorded.
enum Done {
    /// Its record is complete already: mark it forwarded.
    Mark,
    /// Record it processed (`stored`, living until `expires`) and forwarded, in one write.
    Complete {
        /// What the record keeps ([`recorded`] reads it).
        stored: String,
        /// Unix seconds.
        expires: u64,
        /// The event's kind, for the `EventsProcessed` metric.
        kind: &'static str,
    },
}

/// An event ready to go: its messages for one queue, and how it is recorded once they are in.
struct Forward {
    /// Its dedupe key.
    key: String,
    /// To the media fetcher's queue rather than the events queue.
    media: bool,
    /// The event (or its claim-check reference) and what goes with it (taken when published).
    messages: Vec<String>,
    done: Done,
}

/// What applying an event decided to forward.
#[derive(Debug, Default, Clone, PartialEq)]
struct Applied {
    /// The conversation to splice in front of the event.
    conversation: Option<Value>,
    /// A `delivery_failure` message to publish with it.
    failure: Option<String>,
    /// A media message: it goes to the media fetcher, which forwards it once its file is stored.
    media: bool,
}

/// What a processed event's record says to forward, for a redelivery of an event processed before
/// but not forwarded.
enum Recorded {
    /// What it was processed into.
    Applied(Applied),
    /// The whole forwarded message, as earlier versions recorded it.
    Message(String),
}

fn recorded(stored: &str) -> Recorded {
    match serde_json::from_str::<serde_json::Map<String, Value>>(stored) {
        Ok(mut record)
            if record.contains_key(SPLICED) && record.keys().all(|k| k == SPLICED || k == FAILURE || k == MEDIA) =>
        {
            Recorded::Applied(Applied {
                conversation: record.remove(SPLICED).filter(|c| !c.is_null()),
                failure: record.remove(FAILURE).and_then(|f| f.as_str().map(str::to_owned)),
                media: record.remove(MEDIA).and_then(|m| m.as_bool()).unwrap_or(false),
            })
        }
        _ => Recorded::Message(stored.to_owned()),
    }
}

/// Logs and counts an event whose payload lacks what its kind needs; it is forwarded unchanged.
fn uninterpretable(event: &InboundEvent<'_>, error: &dyn std::fmt::Display) -> Applied {
    tracing::warn!(%error, kind = event.kind.as_str(), event_id = %event.event_id, "cannot interpret the event's payload; forwarding it unchanged, state untouched");
    telemetry::emit(FUNCTION, None, &[("UninterpretedEvents", 1.0)]);
    Applied::default()
}

/// Adds `"conversation": {...}` to an event object without re-serializing it.
#[must_use]
pub fn enrich(body: &str, conversation: Option<&Value>) -> String {
    match (conversation, body.trim_start().strip_prefix('{')) {
        (Some(conversation), Some(rest)) if rest.trim_start().starts_with('"') => {
            format!("{{\"conversation\":{conversation},{rest}")
        }
        _ => body.to_owned(),
    }
}

impl<I, C, Q, B> Processor<I, C, Q, B>
where
    I: IdempotencyStore,
    C: ConversationStore + LimitStore,
    Q: EventQueue,
    B: BlobStore,
{
    /// Handles one SQS batch of inbound events; failed records are reported for retry.
    ///
    /// The records are processed concurrently; then the events of the whole batch are forwarded
    /// together (ten to an SQS request), and each is recorded forwarded once its own messages are
    /// in.
    pub async fn handle(&self, event: &SqsEvent, deadline_ms: u64) -> SqsBatchResponse {
        let runs = event.records.iter().map(|record| self.prepare(record, deadline_ms));
        let steps = futures_util::future::join_all(runs).await;
        let results = self.forward_all(steps).await;
        let mut response = SqsBatchResponse::default();
        for (record, ok) in event.records.iter().zip(results) {
            if let (false, Some(id)) = (ok, record.message_id.as_deref().filter(|id| !id.is_empty())) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Forwards the batch's ready events, one `publish_groups` per queue, then records each
    /// forwarded (or, when its messages were not all accepted, processed but not forwarded); one
    /// answer per record, in order: true when done.
    async fn forward_all(&self, steps: Vec<Result<Forward, bool>>) -> Vec<bool> {
        let mut results: Vec<Option<bool>> = Vec::with_capacity(steps.len());
        let (mut to_events, mut to_media) = (Vec::new(), Vec::new());
        for (index, step) in steps.into_iter().enumerate() {
            match step {
                Err(done) => results.push(Some(done)),
                Ok(forward) => {
                    results.push(None);
                    let media = forward.media && self.media.is_some();
                    if media { &mut to_media } else { &mut to_events }.push((index, forward));
                }
            }
        }
        let mut finishing = Vec::new();
        for (queue, mut forwards) in [(Some(&self.events), to_events), (self.media.as_ref(), to_media)] {
            let Some(queue) = queue.filter(|_| !forwards.is_empty()) else { continue };
            let groups: Vec<Vec<String>> = forwards.iter_mut().map(|(_, f)| std::mem::take(&mut f.messages)).collect();
            let published = queue.publish_groups(&groups).await;
            for ((index, forward), result) in forwards.into_iter().zip(published) {
                finishing.push(async move { (index, self.record_forward(forward, result).await) });
            }
        }
        for (index, done) in futures_util::future::join_all(finishing).await {
            results[index] = Some(done);
        }
        results.into_iter().map(|done| done.unwrap_or(false)).collect()
    }

    /// The record's event, processed and ready to forward; `Err(true)` when there is nothing to
    /// forward (a duplicate), `Err(false)` to retry it.
    async fn prepare(&self, record: &SqsMessage, deadline_ms: u64) -> Result<Forward, bool> {
        let body = record.body.as_deref().unwrap_or_default();
        let full = match resolve_event(&self.blobs, body).await {
            Ok(full) => full,
            Err(error) => {
                tracing::error!(%error, "cannot read an inbound event; it will reach the DLQ");
                telemetry::emit(FUNCTION, None, &[("UnreadableEvents", 1.0)]);
                return Err(false);
            }
        };
        let event: InboundEvent<'_> = match serde_json::from_str(&full) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "not an inbound event; it will reach the DLQ");
                return Err(false);
            }
        };
        let key = format!("event:{}", event.event_id);
        match self.dedupe.claim(&key, now_ms(), deadline_ms).await {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Reclaimed) => {
                // An earlier attempt stopped after its claim: it may have forwarded the event
                // before it could record that, so consumers may see it twice (they dedupe on
                // event_id).
                tracing::warn!("taking over an event whose earlier attempt stopped; it may have been forwarded");
                telemetry::emit(FUNCTION, None, &[("UnconfirmedForwards", 1.0)]);
            }
            Ok(Claim::Completed { published: true, .. }) => {
                telemetry::emit(FUNCTION, None, &[("DuplicateEvents", 1.0)]);
                return Err(true);
            }
            Ok(Claim::Completed { outcome, published: false, owner_until_ms }) => {
                if now_ms() <= owner_until_ms {
                    return Err(false);
                }
                // The attempt that recorded it stopped before marking it forwarded: it may or may
                // not have forwarded it, so consumers may see it twice (they dedupe on event_id).
                tracing::warn!("forwarding an event whose earlier forward is unconfirmed");
                telemetry::emit(FUNCTION, None, &[("UnconfirmedForwards", 1.0)]);
                return match recorded(&outcome) {
                    Recorded::Applied(applied) => self.forward(&key, &event, body, &applied, Done::Mark).await,
                    Recorded::Message(message) => {
                        Ok(Forward { key, media: false, messages: vec![message], done: Done::Mark })
                    }
                };
            }
            Ok(Claim::InProgress) => return Err(false),
            Err(error) => {
                tracing::warn!(%error, "cannot claim the event; retrying");
                return Err(false);
            }
        }
        let applied = match self.apply(&event).await {
            Ok(applied) => applied,
            Err(error) => {
                tracing::warn!(%error, kind = event.kind.as_str(), "cannot record the event's facts; retrying");
                let _ = self.dedupe.release(&key).await;
                return Err(false);
            }
        };
        // The record keeps only the conversation: the message itself comes with any redelivery,
        // and may be far larger than a state item (1 MiB against 400 KB).
        let mut stored = serde_json::json!({ SPLICED: applied.conversation });
        if let Some(failure) = &applied.failure {
            stored[FAILURE] = Value::String(failure.clone());
        }
        if applied.media {
            stored[MEDIA] = Value::Bool(true);
        }
        let stored = stored.to_string();
        let expires = now_ms() / 1000 + DEDUPE_SECONDS;
        // Forwarded first, then recorded as processed and forwarded in one write (one write unit
        // less per event than recording, forwarding and marking).
        let done = Done::Complete { stored, expires, kind: event.kind.as_str() };
        self.forward(&key, &event, body, &applied, done).await
    }

    /// The queue message to forward as it came (inline, or the claim-check reference), with the
    /// conversation spliced in front so that the payload's bytes stay untouched. When that is
    /// larger than a message of the events queue (the inbound queue may take 1 MiB, the events
    /// queue 256 KiB), it is stored whole in the bucket and a claim-check reference goes instead,
    /// as ingest does, with the conversation spliced in front of it too: the queue message always
    /// carries the conversation, and `resolve_event` reads the event either way.
    /// A delivery failure goes in the same group, after the event.
    async fn forward(
        &self,
        key: &str,
        event: &InboundEvent<'_>,
        body: &str,
        applied: &Applied,
        done: Done,
    ) -> Result<Forward, bool> {
        let conversation = applied.conversation.as_ref();
        let forwarded = enrich(body, conversation);
        let ready = |message: String, done: Done| {
            let mut messages = vec![message];
            messages.extend(applied.failure.clone());
            Forward { key: key.to_owned(), media: applied.media, messages, done }
        };
        let queue = match (&self.media, applied.media) {
            (Some(media), true) => media,
            _ => &self.events,
        };
        if sqs_safe(&forwarded).len() <= queue.max_message_bytes() {
            return Ok(ready(forwarded, done));
        }
        match claim_check(&self.blobs, event, forwarded).await {
            Ok(pointer) => {
                telemetry::emit(FUNCTION, None, &[("ClaimChecked", 1.0)]);
                Ok(ready(enrich(&pointer, conversation), done))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim-check an event too large for the events queue; retrying");
                self.give_back(key, &done).await;
                Err(false)
            }
        }
    }

    /// An event processed but not forwarded is recorded so (processed, with the conversation it
    /// was processed with, not forwarded): its redelivery forwards that, whenever it comes. The
    /// write only a failed forward costs.
    async fn give_back(&self, key: &str, done: &Done) {
        if let Done::Complete { stored, expires, .. } = done
            && let Err(error) = self.dedupe.complete(key, stored, None, None, *expires).await
        {
            tracing::warn!(%error, "cannot record the processed event; its redelivery processes it again");
        }
    }

    /// Records an event forwarded once the queue accepted its messages (`published`), or processed
    /// but not forwarded when it did not; true when done.
    async fn record_forward(&self, forward: Forward, published: Result<(), QueueError>) -> bool {
        let Forward { key, done, .. } = forward;
        if let Err(error) = published {
            tracing::warn!(%error, "cannot forward the event; retrying");
            self.give_back(&key, &done).await;
            return false;
        }
        match done {
            Done::Mark => {
                if let Err(error) = self.dedupe.mark_published(&key).await {
                    tracing::warn!(%error, "event forwarded but not marked; a redelivery may forward it again");
                }
                true
            }
            Done::Complete { stored, expires, kind } => {
                match self.dedupe.complete_published(&key, &stored, expires).await {
                    Ok(()) => {
                        telemetry::emit(FUNCTION, Some(("Kind", kind)), &[("EventsProcessed", 1.0)]);
                        true
                    }
                    Err(error) => {
                        // The claim expires and the redelivery forwards it again (consumers dedupe).
                        tracing::warn!(%error, "event forwarded but not recorded; a redelivery will forward it again");
                        false
                    }
                }
            }
        }
    }

    /// Links the ids a payload dated `at` names together, unless their records already say so
    /// (one read instead of a write per id on every message) or an id was given up since
    /// ([`identity::linkable`]).
    async fn learn(&self, phone: &str, ids: &Ids, at: i64) -> Result<(), String> {
        if !ids.links_anything() {
            return Ok(());
        }
        let records = self.state.records(phone, &ids.ids()).await.map_err(|e| e.to_string())?;
        if let Some(ids) = identity::linkable(ids, &records, at) {
            self.state.link(phone, &ids).await.map_err(|e| e.to_string())?;
            telemetry::emit(FUNCTION, None, &[("IdentityLinks", 1.0)]);
        }
        Ok(())
    }

    /// Records what the event says about the conversation. Every write is idempotent and
    /// order-independent, so a retry after a partial failure is harmless.
    async fn apply(&self, event: &InboundEvent<'_>) -> Result<Applied, String> {
        if event.kind == EventKind::Template {
            self.learn_template_category(event).await?;
            return Ok(Applied::default());
        }
        self.learn_limits(event).await?;
        let (Some(phone), mut user) = (event.phone_number_id.as_deref(), event.user_id.clone()) else {
            return Ok(Applied::default());
        };
        let contact: Option<Value> = event.contact.and_then(|c| serde_json::from_str(c.get()).ok());
        let at = event.timestamp.unwrap_or_else(|| i64::try_from(event.received_at / 1000).unwrap_or(0));
        let mut failure = None;
        let mut media = false;
        match event.kind {
            EventKind::Message => {
                let message: Message = match event.payload_as() {
                    Ok(message) => message,
                    Err(error) => return Ok(uninterpretable(event, &error)),
                };
                media = wa_core::media::InboundMedia::of(&message).is_some();
                if let Some(change) = identity::identity_change(&message) {
                    self.learn(phone, &change.now, at).await?;
                    if let Some(old) = &change.retired_phone {
                        self.state.detach(phone, old, at).await.map_err(|e| e.to_string())?;
                    }
                    telemetry::emit(FUNCTION, None, &[("IdentityChanges", 1.0)]);
                    // The conversation forwarded with it is the person's under their new ids.
                    user = change.user_id.clone().or_else(|| change.now.ids().into_iter().next()).or(user);
                } else {
                    let Some(user) = user.as_deref() else { return Ok(Applied::default()) };
                    self.learn(phone, &identity::message_ids(&message, contact.as_ref()), at).await?;
                    let name = contact.as_ref().and_then(|c| c.pointer("/profile/name").and_then(Value::as_str));
                    self.state.record_inbound(phone, user, at, name).await.map_err(|e| e.to_string())?;
                    if let Some(username) =
                        contact.as_ref().and_then(|c| c.pointer("/profile/username")).and_then(Value::as_str)
                    {
                        self.state.record_username(phone, user, username).await.map_err(|e| e.to_string())?;
                    }
                    let text = message
                        .text
                        .as_ref()
                        .map(|t| t.body.as_str())
                        .or_else(|| message.button.as_ref().and_then(|b| b.text.as_deref()));
                    if let Some(consent) = text.and_then(|t| self.keywords.classify(t)) {
                        let opted_out = consent == Consent::OptOut;
                        self.state
                            .set_marketing_opt_out(phone, user, opted_out, at)
                            .await
                            .map_err(|e| e.to_string())?;
                        telemetry::emit(FUNCTION, None, &[(if opted_out { "OptOuts" } else { "OptIns" }, 1.0)]);
                    }
                }
            }
            EventKind::Status => {
                let status: Status = match event.payload_as() {
                    Ok(status) => status,
                    Err(error) => return Ok(uninterpretable(event, &error)),
                };
                self.learn(phone, &identity::status_ids(&status, contact.as_ref()), at).await?;
                failure = self.apply_status(phone, user.as_deref(), event, &status).await?;
            }
            _ if event.field == "user_preferences" => {
                let value: UserPreferencesValue = match event.payload_as() {
                    Ok(value) => value,
                    Err(error) => return Ok(uninterpretable(event, &error)),
                };
                for preference in &value.user_preferences {
                    let mut ids = Ids::default();
                    ids.add(preference.wa_id.as_ref().map(|w| w.as_str()));
                    ids.add(preference.user_id.as_deref());
                    ids.add(preference.extra.get("parent_user_id").and_then(Value::as_str));
                    let when = preference.timestamp.as_ref().and_then(wa_core::webhook::FlexString::as_unix_seconds);
                    self.learn(phone, &ids, when.unwrap_or(at)).await?;
                    let Some(user) = preference.user_id.as_deref().or(preference.wa_id.as_ref().map(|w| w.as_str()))
                    else {
                        continue;
                    };
                    let opted_out = match preference.value.as_deref() {
                        Some("stop") => true,
                        Some("resume") => false,
                        _ => continue,
                    };
                    let at = preference
                        .timestamp
                        .as_ref()
                        .and_then(wa_core::webhook::FlexString::as_unix_seconds)
                        .unwrap_or(0);
                    self.state
                        .set_marketing_opt_out(phone, identity::normalize_id(user), opted_out, at)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            _ => {}
        }
        // What consumers want with a user's event: the person's conversation as it now stands.
        let Some(user) = user else { return Ok(Applied { conversation: None, failure, media }) };
        let person = identity::resolve(&self.state, phone, &user).await.map_err(|e| e.to_string())?;
        let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        Ok(Applied { conversation: Some(person.facts.summary(now)), failure, media })
    }

    /// A status: the message's status (forward only), the ledger, the free entry point, and
    /// for a `failed` one the opt-out (131050), the closed window (131047) and the delivery failure
    /// of the request that sent it (returned as the message to publish).
    async fn apply_status(
        &self,
        phone: &str,
        user: Option<&str>,
        event: &InboundEvent<'_>,
        status: &Status,
    ) -> Result<Option<String>, String> {
        let at = status.timestamp.as_ref().and_then(wa_core::webhook::FlexString::as_unix_seconds);
        let category = status.pricing.as_ref().and_then(|p| p.category.as_deref()).map(pricing_category);
        let update = StatusUpdate {
            wamid: &status.id,
            status: &status.status,
            at,
            recipient: status.user_id(),
            callback_data: status.biz_opaque_callback_data.as_deref(),
            pricing: status.pricing.as_ref().and_then(|p| {
                Some((category.as_deref()?, p.kind.as_deref().unwrap_or("regular"), p.billable.unwrap_or(false)))
            }),
            pricing_model: status.pricing.as_ref().and_then(|p| p.pricing_model.as_deref()),
        };
        let written = self.state.apply_status(&update).await.map_err(|e| e.to_string())?;
        let applied = written.advanced;
        let received = i64::try_from(event.received_at / 1000).unwrap_or(0);
        let month = month_of(at.unwrap_or(received));
        if applied {
            self.state.count_status(phone, &month, status.status.as_str()).await.map_err(|e| e.to_string())?;
        }
        // The ledger's mark and counter (a transaction: four write units) only while the message
        // is not in it yet; concurrent statuses of one message are still counted once by its
        // condition.
        if let Some((category, kind, true)) = update.pricing
            && !written.costed
            && self.state.count_cost_once(&status.id, phone, &month, category, kind).await.map_err(|e| e.to_string())?
        {
            telemetry::emit(FUNCTION, Some(("Category", category)), &[("BillableMessages", 1.0)]);
        }
        if let (Some(user), Some("free_entry_point")) = (user, status.pricing.as_ref().and_then(|p| p.kind.as_deref()))
        {
            let until = at.unwrap_or(received) + wa_core::conversation::FREE_ENTRY_POINT_SECONDS;
            self.state.record_free_entry_point(phone, user, until).await.map_err(|e| e.to_string())?;
        }
        if status.status != StatusKind::Failed {
            return Ok(None);
        }
        let has = |code: i64| status.errors.iter().any(|e| e.code == code);
        if let (true, Some(user)) = (has(graph_error::MARKETING_OPT_OUT), user) {
            self.state.set_marketing_opt_out(phone, user, true, at.unwrap_or(0)).await.map_err(|e| e.to_string())?;
        }
        if let (true, Some(user)) = (has(graph_error::WINDOW_CLOSED), user) {
            self.state.mark_window_closed(phone, user, at.unwrap_or(received)).await.map_err(|e| e.to_string())?;
        }
        // One delivery failure per failed message: decided from the stored status (not from this
        // write having applied), so that a retry after a crash decides the same; the event's dedupe
        // makes it one. A message read before it failed was delivered: no failure.
        let failed =
            applied || self.state.status_of(&status.id).await.map_err(|e| e.to_string())?.as_deref() == Some("failed");
        if !failed {
            return Ok(None);
        }
        let key = self.state.send_key_of(&status.id).await.map_err(|e| e.to_string())?;
        let first = status.errors.first();
        let failed_status = FailedStatus {
            wamid: &status.id,
            phone_number_id: Some(phone),
            recipient: status.user_id(),
            callback_data: status.biz_opaque_callback_data.as_deref(),
            code: first.map(|e| e.code),
            message: first.and_then(|e| e.message.as_deref().or(e.title.as_deref())),
            at,
        };
        let failure = DeliveryFailure::new(&failed_status, key, now_ms());
        telemetry::emit(FUNCTION, Some(("Class", failure.error.class.as_str())), &[("DeliveryFailures", 1.0)]);
        serde_json::to_string(&failure).map(Some).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrichment_is_spliced_without_touching_the_payload() {
        let body = r#"{"version":1,"payload":{"z":1,"a":"\u00e9 a\/b"}}"#;
        let out = enrich(body, Some(&serde_json::json!({"marketing_opt_out": true})));
        assert_eq!(
            out,
            r#"{"conversation":{"marketing_opt_out":true},"version":1,"payload":{"z":1,"a":"\u00e9 a\/b"}}"#
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["conversation"]["marketing_opt_out"], true);
        assert_eq!(enrich(body, None), body);
        assert_eq!(enrich("{}", Some(&serde_json::json!({}))), "{}");
    }

    #[test]
    fn a_record_keeps_the_conversation_and_older_records_the_whole_message() {
        let stored = serde_json::json!({SPLICED: {"marketing_opt_out": true}}).to_string();
        assert!(
            matches!(recorded(&stored), Recorded::Applied(Applied { conversation: Some(c), failure: None, media: false }) if c == serde_json::json!({"marketing_opt_out": true}))
        );
        let none = serde_json::json!({ SPLICED: null }).to_string();
        assert!(
            matches!(recorded(&none), Recorded::Applied(Applied { conversation: None, failure: None, media: false })),
            "a template event has no conversation"
        );
        let failed = serde_json::json!({ SPLICED: null, FAILURE: "{\"kind\":\"delivery_failure\"}" }).to_string();
        assert!(
            matches!(recorded(&failed), Recorded::Applied(Applied { failure: Some(f), .. }) if f.contains("delivery_failure"))
        );
        // Written by an earlier version: the forwarded message itself.
        let old = r#"{"conversation":{"marketing_opt_out":false},"version":1,"event_id":"e","payload":{"a":1}}"#;
        assert!(matches!(recorded(old), Recorded::Message(m) if m == old));
    }
}
