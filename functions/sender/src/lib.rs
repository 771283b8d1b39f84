//! The sender: SQS (FIFO outbound queue) → Graph API `/{phone_number_id}/messages`.
//!
//! Per batch: requests are parsed and checked first (an invalid one ends with a failed outcome, no
//! Graph call); send slots are reserved per business number in the shared state table, so that all
//! concurrent senders together stay under the number's throughput; message groups (one per
//! business number and recipient) run concurrently, the records of one group in order.
//!
//! Per record: a conditional idempotency claim in DynamoDB (a completed request makes no Graph call
//! and at most re-publishes its outcome), the send at its slot, then exactly one outcome event on
//! the events queue. Failures are classified by Meta's code: permanent → failed outcome; retryable
//! → batch item failure with a redelivery delay (4^X seconds for the pair rate, for that recipient
//! only); token errors → reload the secret and retry once; account blocks → stop the line (every
//! remaining record is retried later, nothing is dropped). A panic in one record fails only that
//! record and the later ones of its group; item identifiers are always the input message ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::FutureExt;
use wa_core::apps::AppRouting;
use wa_core::graph_error::{self, ErrorClass};
use wa_core::hold::{self, Hold, HoldCheck};
use wa_core::identity::{self, Person};
use wa_core::limit::{self, Counted, Gate, Portfolios, Tier, Window};
use wa_core::media::{S3Media, check_file, object_mime};
use wa_core::outcome::SendOutcome;
use wa_core::policy::{self, Decision};
use wa_core::ports::{
    Claim, ConversationStore, EventQueue, GraphAccepted, GraphApi, GraphFailure, HoldStore, IdempotencyStore,
    LimitFacts, LimitStore, MediaIdCache, ObjectSource, Redelivery, SecretSource, StoreError, ThrottleStore,
};
use wa_core::ratelimit::{max_lateness_us, paced_interval_us};
use wa_core::secrets::SecretStage;
use wa_core::send::{SendRequest, Violation};
use wa_core::templates::TemplateFacts;
use wa_infra::telemetry;

pub mod lead;

pub use lead::SlotLead;

/// The function name used in metrics.
pub const FUNCTION: &str = "sender";

/// The reason given when the line was stopped while a record waited for its slot.
const STOPPED: &str = "the line was stopped";

/// The reason given when no send slot could be had within the horizon.
const NO_SLOT: &str = "no send slot within the horizon";

/// The reason given when the invocation's deadline is too close for a Graph call.
const NEAR_DEADLINE: &str = "too close to the invocation's deadline";

/// Tunables.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Messages per second per business number unless overridden (Meta's default: 80).
    pub default_rate: u32,
    /// Per-number overrides (up to 1000).
    pub rates: HashMap<String, u32>,
    /// How long idempotency records live (≥ 30 days).
    pub record_ttl: Duration,
    /// How far ahead send slots may be reserved; busier than that, records are retried later.
    pub slot_horizon: Duration,
    /// Redelivery delay after a throughput throttle (130429, 4, 80007).
    pub throttle_delay_s: u32,
    /// The fraction of the limit to pace at (a margin for network jitter).
    pub pacing: f64,
    /// Refuse free-form messages outside the 24 h window and marketing to opted-out users, from the
    /// event processor's state (off only where this pipeline does not receive the webhooks).
    pub enforce_conversation_rules: bool,
    /// How far ahead of now a slot is reserved at least, so that the reservation's own round trip
    /// does not make the send late (a few DynamoDB round trips); longer while reservations are
    /// slower than that (see [`lead`]).
    pub slot_lead: Duration,
    /// Refuse template sends the registry has never seen (`UNKNOWN_TEMPLATES=refuse`); by default
    /// they are sent, and Meta answers 132001 if the template does not exist.
    pub refuse_unknown_templates: bool,
    /// No Graph call starts with less than this left before the invocation's deadline: the Graph
    /// client's timeout and the time to record, publish and mark the outcome (default 12 s: the
    /// 10 s Graph timeout and 2 s). Half the invocation when that is longer than the invocation.
    pub deadline_reserve: Duration,
    /// The messaging-limit tier until Meta announces one (`MESSAGING_LIMIT`); `None`: no limit is
    /// applied until a webhook names the tier.
    pub messaging_limit: Option<Tier>,
    /// Which portfolio each number's limit is counted in (`PORTFOLIOS`).
    pub portfolios: Portfolios,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            default_rate: 80,
            rates: HashMap::new(),
            record_ttl: Duration::from_secs(30 * 86_400),
            slot_horizon: Duration::from_secs(10),
            throttle_delay_s: 2,
            pacing: 0.97,
            enforce_conversation_rules: true,
            slot_lead: Duration::from_millis(30),
            refuse_unknown_templates: false,
            deadline_reserve: Duration::from_secs(12),
            messaging_limit: None,
            portfolios: Portfolios::default(),
        }
    }
}

impl SenderConfig {
    /// The number's rate: its configured override, else what `THROUGHPUT_UPGRADE` taught, else
    /// the default. An override is deliberate, so an upgrade does not lift it.
    fn rate(&self, phone_number_id: &str, learned: &HashMap<String, u32>) -> u32 {
        self.rates
            .get(phone_number_id)
            .or_else(|| learned.get(phone_number_id))
            .copied()
            .unwrap_or(self.default_rate)
            .clamp(1, 1000)
    }
}

/// What the sender needs.
/// The ports are grouped by what serves them: `I` the state table (idempotency records,
/// conversation facts, media ids), `T` its limits part (send slots, holds, Meta's messaging limit;
/// a separate type so that a test can slow it alone), `Q` the queues (outcomes, redelivery
/// delays), `O` the producers' objects.
pub struct Sender<G, I, T, Q, S, O> {
    /// The Graph API.
    pub graph: G,
    /// Idempotency records (and media ids of uploaded files).
    pub idempotency: I,
    /// Shared rate-limit state.
    pub throttle: T,
    /// The events queue (outcomes).
    pub events: Q,
    /// Redelivery delays on the outbound queue.
    pub redelivery: Q,
    /// Access tokens.
    pub secrets: S,
    /// Conversation facts (24 h window, marketing opt-out), kept by the event processor.
    pub conversations: I,
    /// The objects producers send by `{"s3": {"bucket", "key"}}`.
    pub objects: O,
    /// Tunables.
    pub config: SenderConfig,
    /// The lead slots are reserved with, following the reservations' round trips (start with
    /// `SlotLead::default()`).
    pub lead: SlotLead,
}

/// How one record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Finished (accepted or failed for good); the record is deleted.
    Done,
    /// Try again later, after `delay_s` when given.
    Retry {
        /// Redelivery delay.
        delay_s: Option<u32>,
    },
    /// Stop sending: this and every record not yet processed are retried later. `hold`: Meta's
    /// code when it was an account-level block, which holds the number beyond this batch.
    StopLine {
        /// Why.
        reason: String,
        /// The account-level code, when the number is to be held.
        hold: Option<i64>,
    },
}

/// How long an upload may take before another sender may try it.
const UPLOAD_CLAIM_MS: u64 = 120_000;
/// How long an uploaded media id is used: less than Meta's 30 days.
const MEDIA_ID_TTL_S: u64 = 25 * 86_400;

/// A request's media, made ready to send.
enum MediaReady {
    /// No file in S3: send as it is.
    Unchanged,
    /// The request with Meta's media id in place of the S3 object.
    Replaced(Box<SendRequest>),
    /// It cannot be sent: a failed outcome with this reason.
    Failed { code: Option<i64>, reason: String },
    /// Not yet (another sender is uploading it, or S3 or Meta failed): retry.
    Later { delay_s: Option<u32>, reason: String },
}

/// What the records of one invocation share: the line's stop, the invocation's deadline, and
/// Meta's limits as read for the batch.
struct Run {
    stop: AtomicBool,
    /// Learned send rates (`THROUGHPUT_UPGRADE`).
    rates: HashMap<String, u32>,
    /// The portfolios' messaging-limit windows as last read (`None`: they could not be read),
    /// kept up to date by the batch's own counts and re-reads.
    windows: Option<std::sync::Mutex<HashMap<String, Window>>>,
    deadline_ms: u64,
    /// No Graph call starts later than this before the deadline: the configured reserve, or half
    /// the invocation when the reserve is longer than the invocation (a Graph timeout set longer
    /// than the function's would send nothing).
    reserve_ms: u64,
}

/// A number's hold as read at the start of a batch, and what it means for the batch.
struct NumberHold {
    current: Hold,
    decision: HoldCheck,
}

struct Prepared<'a> {
    message_id: &'a str,
    receipt_handle: Option<&'a str>,
    group: String,
    /// The request, when it parsed.
    request: Option<SendRequest>,
    /// The rule it broke, when it did not parse or is invalid.
    violation: Option<Violation>,
    key: String,
}

/// Whether an ambiguous send of this request is retried ([`policy::on_ambiguous`]).
fn retries_ambiguous(request: &SendRequest) -> bool {
    policy::on_ambiguous(request.delivery) == policy::Ambiguous::Retry
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Sleeps until the slot; false when the wake-up came later than `lateness_us`.
async fn wait_until(slot_us: u64, lateness_us: u64) -> bool {
    let wait = slot_us.saturating_sub(now_us());
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait)).await;
    }
    let on_time = now_us().saturating_sub(slot_us) <= lateness_us;
    if !on_time {
        telemetry::emit(FUNCTION, None, &[("LateSlots", 1.0)]);
    }
    on_time
}

fn prepare(record: &SqsMessage) -> Option<Prepared<'_>> {
    let message_id = record.message_id.as_deref().filter(|id| !id.is_empty())?;
    let (request, violation) = match SendRequest::from_json(record.body.as_deref().unwrap_or_default()) {
        Ok(request) => {
            let violation = request.validate().err();
            (Some(request), violation)
        }
        Err(violation) => (None, Some(violation)),
    };
    let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_else(|| format!("msg:{message_id}"));
    let derived = record.attributes.get("MessageDeduplicationId").map_or(message_id, String::as_str);
    let key = match &request {
        Some(SendRequest { idempotency_key: Some(key), .. }) => key.clone(),
        _ => format!("sqs:{derived}"),
    };
    Some(Prepared { message_id, receipt_handle: record.receipt_handle.as_deref(), group, request, violation, key })
}

impl<G, I, T, Q, S, O> Sender<G, I, T, Q, S, O>
where
    G: GraphApi,
    I: IdempotencyStore + ConversationStore + MediaIdCache,
    T: ThrottleStore + HoldStore + LimitStore,
    Q: EventQueue + Redelivery,
    S: AppRouting,
    O: ObjectSource,
{
    /// Handles one SQS batch; `deadline_ms` is the invocation's deadline (Unix ms), which bounds
    /// idempotency claims.
    pub async fn handle(&self, event: &SqsEvent, deadline_ms: u64) -> SqsBatchResponse {
        let all: Vec<Prepared<'_>> = event.records.iter().filter_map(prepare).collect();
        if all.len() != event.records.len() {
            tracing::error!(
                records = event.records.len(),
                usable = all.len(),
                "records without a message id were skipped"
            );
        }
        // 0. Numbers on hold: their records wait (no claim, no Graph call) until the cool-down
        //    ends; then one record probes.
        let holds = self.holds(&all).await;
        let mut prepared = Vec::with_capacity(all.len());
        let mut deferred = Vec::new();
        let mut probes: HashMap<String, usize> = HashMap::new();
        for record in all {
            let number = record.request.as_ref().map(|r| r.phone_number_id.clone());
            match number.as_ref().and_then(|n| holds.get(n)) {
                Some(NumberHold { decision: HoldCheck::Defer { until_ms }, .. }) => {
                    deferred.push((record, hold::defer_seconds(*until_ms, now_ms())));
                }
                Some(NumberHold { decision: HoldCheck::Probe, .. }) => match probes.entry(number.unwrap_or_default()) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        deferred.push((record, hold::defer_seconds(now_ms() + hold::PROBE_MS, now_ms())));
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(prepared.len());
                        prepared.push(record);
                    }
                },
                _ => prepared.push(record),
            }
        }
        // 1. Claim every record at once (one conditional write each).
        let now = now_ms();
        let claims: Vec<Result<Claim, StoreError>> =
            futures_util::future::join_all(prepared.iter().map(|r| self.idempotency.claim(&r.key, now, deadline_ms)))
                .await;
        // 2. One block of consecutive send slots per business number for the records to send, so
        //    that this batch finishes in one stretch instead of waiting on slots spread over others'.
        // Warm the token cache before taking slots (a cold read must not make the first sends late).
        let numbers: BTreeSet<&str> =
            prepared.iter().filter_map(|r| r.request.as_ref()).map(|r| r.phone_number_id.as_str()).collect();
        for number in numbers {
            if let Err(error) = self.secrets.for_number(number).get(SecretStage::Current).await {
                tracing::warn!(%error, "cannot read the access token");
            }
        }
        let run = self.run(&prepared, deadline_ms).await;
        let slots = self.reserve_slots(&prepared, &claims, &run).await;
        // 3. Records of one group in order; groups concurrently.
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, record) in prepared.iter().enumerate() {
            groups.entry(record.group.as_str()).or_default().push(index);
        }
        let runs = groups.values().map(|indices| self.run_group(&prepared, &claims, &slots, indices, &run));
        let mut verdicts: Vec<(usize, Verdict)> =
            futures_util::future::join_all(runs).await.into_iter().flatten().collect();
        verdicts.sort_by_key(|(index, _)| *index);

        self.update_holds(&prepared, &verdicts, &holds, &probes).await;

        let mut response = SqsBatchResponse::default();
        for (record, seconds) in &deferred {
            if let Some(receipt) = record.receipt_handle
                && let Err(error) = self.redelivery.delay(receipt, *seconds).await
            {
                tracing::warn!(%error, "cannot delay a held request; the visibility timeout applies");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.to_owned();
            response.batch_item_failures.push(failure);
        }
        if !deferred.is_empty() {
            telemetry::emit(FUNCTION, None, &[("HeldSends", deferred.len() as f64)]);
        }
        for (index, verdict) in verdicts {
            let record = &prepared[index];
            let delay = match verdict {
                Verdict::Done => continue,
                Verdict::Retry { delay_s } => delay_s,
                Verdict::StopLine { .. } => None,
            };
            if let (Some(seconds), Some(receipt)) = (delay, record.receipt_handle)
                && let Err(error) = self.redelivery.delay(receipt, seconds).await
            {
                tracing::warn!(%error, "cannot delay the redelivery; the visibility timeout applies");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.to_owned();
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// What the batch's records share: the deadline and the reserve before it, and Meta's limits
    /// read once (the learned rates of the batch's numbers, and the messaging-limit windows of the
    /// portfolios its business-initiated templates count in).
    async fn run(&self, prepared: &[Prepared<'_>], deadline_ms: u64) -> Run {
        let configured = u64::try_from(self.config.deadline_reserve.as_millis()).unwrap_or(u64::MAX);
        let length = deadline_ms.saturating_sub(now_ms());
        let reserve_ms = if configured < length {
            configured
        } else {
            // A Graph timeout as long as the function's would never let a send start.
            tracing::error!(
                reserve_ms = configured,
                invocation_ms = length,
                "GRAPH_TIMEOUT_MS leaves no time to send before the function's timeout; using half the invocation"
            );
            length / 2
        };
        let requests = || prepared.iter().filter_map(|r| r.request.as_ref());
        let numbers: BTreeSet<&str> = requests().map(|r| r.phone_number_id.as_str()).collect();
        let portfolios: BTreeSet<&str> = requests()
            .filter(|r| limit::counts_send(r, r.fallback.is_some(), None))
            .map(|r| self.config.portfolios.of(&r.phone_number_id))
            .collect();
        let numbers: Vec<&str> = numbers.into_iter().collect();
        let portfolios: Vec<&str> = portfolios.into_iter().collect();
        let (rates, windows) = match self.throttle.limit_facts(&numbers, &portfolios).await {
            Ok(LimitFacts { rates, windows }) => (rates, Some(std::sync::Mutex::new(windows))),
            Err(error) => {
                tracing::warn!(%error, "cannot read the messaging limit; its sends wait for the next read");
                (HashMap::new(), None)
            }
        };
        Run { stop: AtomicBool::new(false), rates, windows, deadline_ms, reserve_ms }
    }

    /// The hold of every business number in the batch, with what it means now (a number whose
    /// hold cannot be read is sent from: the batch's own stop still protects it). A number whose
    /// cool-down is over is probed by the one sender that claims the probe; the others defer.
    async fn holds(&self, records: &[Prepared<'_>]) -> HashMap<String, NumberHold> {
        let numbers: BTreeSet<&str> =
            records.iter().filter_map(|r| r.request.as_ref()).map(|r| r.phone_number_id.as_str()).collect();
        let mut holds = HashMap::new();
        for number in numbers {
            let current = match self.throttle.hold(number).await {
                Ok(Some(current)) => current,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the number's hold; sending");
                    continue;
                }
            };
            let now = now_ms();
            let mut decision = hold::check(Some(&current), now);
            if decision == HoldCheck::Probe {
                match self.throttle.claim_probe(number, now, now + hold::PROBE_MS).await {
                    Ok(true) => tracing::warn!(
                        code = current.code,
                        strikes = current.strikes,
                        "probing a held number with one request"
                    ),
                    Ok(false) | Err(_) => decision = HoldCheck::Defer { until_ms: now + hold::PROBE_MS },
                }
            }
            telemetry::emit(FUNCTION, None, &[("HeldNumbers", 1.0)]);
            holds.insert(number.to_owned(), NumberHold { current, decision });
        }
        holds
    }

    /// After the batch: an account-level block holds its number (longer after a failed probe); a
    /// probe that went through (accepted, or refused for a reason of its own) clears the hold.
    async fn update_holds(
        &self,
        prepared: &[Prepared<'_>],
        verdicts: &[(usize, Verdict)],
        holds: &HashMap<String, NumberHold>,
        probes: &HashMap<String, usize>,
    ) {
        let mut blocked: BTreeMap<&str, i64> = BTreeMap::new();
        for (index, verdict) in verdicts {
            if let (Verdict::StopLine { hold: Some(code), .. }, Some(request)) = (verdict, &prepared[*index].request) {
                blocked.entry(request.phone_number_id.as_str()).or_insert(*code);
            }
        }
        for (number, code) in &blocked {
            let previous = holds.get(*number).map(|h| &h.current);
            let next = hold::next_hold(previous, *code, now_ms());
            match self.throttle.put_hold(number, &next, previous.map_or(0, |h| h.strikes)).await {
                Ok(_) => {
                    tracing::error!(
                        code,
                        strikes = next.strikes,
                        cool_down_s = (next.until_ms - now_ms()) / 1000,
                        "holding the number: no sends until the cool-down ends"
                    );
                    telemetry::emit(FUNCTION, None, &[("NumberHolds", 1.0)]);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot record the number's hold; the next batch will call Meta again")
                }
            }
        }
        for (number, index) in probes {
            let through = verdicts.iter().any(|(i, v)| i == index && *v == Verdict::Done);
            if through && !blocked.contains_key(number.as_str()) {
                match self.throttle.clear_hold(number).await {
                    Ok(()) => tracing::warn!("the probe went through: the number's hold is cleared"),
                    Err(error) => tracing::warn!(%error, "cannot clear the number's hold"),
                }
            }
        }
    }

    /// Reserves, per business number, one block of consecutive slots for the records that were
    /// claimed and are valid; returns each such record's slot.
    async fn reserve_slots(
        &self,
        prepared: &[Prepared<'_>],
        claims: &[Result<Claim, StoreError>],
        run: &Run,
    ) -> HashMap<usize, u64> {
        let mut per_number: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, record) in prepared.iter().enumerate() {
            let Ok(claim) = &claims[index] else { continue };
            if let (Some(request), None) = (&record.request, &record.violation)
                && (*claim == Claim::Acquired || (*claim == Claim::Reclaimed && retries_ambiguous(request)))
            {
                per_number.entry(request.phone_number_id.as_str()).or_default().push(index);
            }
        }
        let horizon = u64::try_from(self.config.slot_horizon.as_micros()).unwrap_or(u64::MAX);
        let mut slots = HashMap::new();
        for (number, indices) in per_number {
            let interval = self.interval_us(number, run);
            let count = u32::try_from(indices.len()).unwrap_or(u32::MAX);
            match self.reserve(number, count, interval, horizon, true).await {
                Ok(Some(reservation)) => {
                    for (i, index) in indices.into_iter().enumerate() {
                        slots.insert(index, reservation.slot_us(u32::try_from(i).unwrap_or(u32::MAX)));
                    }
                }
                // Each record then asks for a slot of its own when its turn comes.
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot reserve send slots for the batch"),
            }
        }
        slots
    }

    async fn run_group(
        &self,
        prepared: &[Prepared<'_>],
        claims: &[Result<Claim, StoreError>],
        slots: &HashMap<usize, u64>,
        indices: &[usize],
        run: &Run,
    ) -> Vec<(usize, Verdict)> {
        let mut out = Vec::with_capacity(indices.len());
        let mut blocked = false;
        for &index in indices {
            let record = &prepared[index];
            if blocked || run.stop.load(Ordering::SeqCst) {
                if claims[index].as_ref().is_ok_and(Claim::owned) {
                    self.release(&record.key).await;
                }
                out.push((index, Verdict::Retry { delay_s: None }));
                continue;
            }
            let slot = slots.get(&index).copied();
            let verdict = AssertUnwindSafe(self.process(record, &claims[index], slot, run))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!("a record panicked; it and the rest of its group will be retried");
                    telemetry::emit(FUNCTION, None, &[("RecordPanics", 1.0)]);
                    Verdict::Retry { delay_s: None }
                });
            if let Verdict::StopLine { reason, .. } = &verdict {
                tracing::error!(%reason, "stopping the line: no more sends in this batch");
                telemetry::emit(FUNCTION, None, &[("StopTheLine", 1.0)]);
                run.stop.store(true, Ordering::SeqCst);
            }
            blocked = verdict != Verdict::Done;
            out.push((index, verdict));
        }
        out
    }

    async fn process(
        &self,
        record: &Prepared<'_>,
        claim: &Result<Claim, StoreError>,
        slot_us: Option<u64>,
        run: &Run,
    ) -> Verdict {
        let request = record.request.as_ref();
        let base = SendOutcome::new(
            &record.key,
            request.and_then(|r| r.callback_data.as_deref()),
            request.map(|r| r.phone_number_id.as_str()),
            request.and_then(|r| r.to.as_deref()),
            0,
        );
        match claim {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Reclaimed) => {
                telemetry::emit(FUNCTION, None, &[("ReclaimedSends", 1.0)]);
                if let (Some(request), None) = (request, &record.violation)
                    && !retries_ambiguous(request)
                {
                    tracing::warn!("an earlier attempt stopped while sending: unknown outcome, not sent again");
                    telemetry::emit(FUNCTION, None, &[("UnknownOutcomes", 1.0)]);
                    let mut outcome = base.unknown(policy::UNKNOWN_INTERRUPTED);
                    outcome.at = now_ms();
                    return self.finish(record, &outcome).await;
                }
                tracing::warn!("taking over an earlier attempt that stopped while sending; it may have been sent");
            }
            Ok(Claim::InProgress) => return Verdict::Retry { delay_s: None },
            Ok(Claim::Completed { outcome, published, owner_until_ms }) => {
                telemetry::emit(FUNCTION, None, &[("DuplicatesSkipped", 1.0)]);
                if *published {
                    return Verdict::Done;
                }
                if now_ms() <= *owner_until_ms {
                    // The attempt that completed it may be publishing right now: let it.
                    return Verdict::Retry { delay_s: None };
                }
                // That attempt stopped between recording and marking it published: it may or may
                // not have published it, so consumers may see it twice (they dedupe on the key).
                tracing::warn!("publishing an outcome whose earlier publication is unconfirmed");
                telemetry::emit(FUNCTION, None, &[("UnconfirmedOutcomes", 1.0)]);
                return self.publish_stored(&record.key, outcome).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim the request; retrying later");
                return Verdict::Retry { delay_s: None };
            }
        }
        let (Some(request), None) = (request, &record.violation) else {
            let reason = record.violation.as_ref().map_or_else(|| "invalid request".to_owned(), Violation::to_string);
            tracing::warn!(%reason, "invalid send request: failed outcome, no Graph call");
            telemetry::emit(FUNCTION, Some(("Class", "permanent")), &[("SendFailures", 1.0)]);
            let mut outcome = base.failed(None, ErrorClass::Permanent, reason);
            outcome.at = now_ms();
            return self.finish(record, &outcome).await;
        };

        let (decision, person) = match self.decide(request).await {
            Ok(decided) => decided,
            Err(error) => {
                tracing::warn!(%error, "cannot read the conversation; retrying later");
                self.release(&record.key).await;
                return Verdict::Retry { delay_s: None };
            }
        };
        // A template: approved, with the parameters the registry says it takes.
        if !matches!(decision, Decision::Refuse(..)) {
            match self.check_template(request).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    tracing::warn!(%reason, "template refused by the registry: failed outcome, no Graph call");
                    telemetry::emit(FUNCTION, Some(("Refusal", "template")), &[("Refused", 1.0)]);
                    let mut outcome = base.failed(None, ErrorClass::Permanent, reason);
                    outcome.at = now_ms();
                    return self.finish(record, &outcome).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the template registry; retrying later");
                    self.release(&record.key).await;
                    return Verdict::Retry { delay_s: None };
                }
            }
        }
        // A file named in S3: checked, uploaded once per (number, object), sent by id.
        let uploaded;
        let request = match self.prepare_media(request).await {
            MediaReady::Unchanged => request,
            MediaReady::Replaced(replaced) => {
                uploaded = replaced;
                &uploaded
            }
            MediaReady::Failed { code, reason } => {
                tracing::warn!(code, %reason, "the request's media cannot be sent: failed outcome");
                telemetry::emit(FUNCTION, Some(("Class", "permanent")), &[("SendFailures", 1.0)]);
                let mut outcome = base.failed(code, ErrorClass::Permanent, reason);
                outcome.at = now_ms();
                return self.finish(record, &outcome).await;
            }
            MediaReady::Later { delay_s, reason } => {
                tracing::warn!(%reason, "the request's media is not ready; retrying later");
                self.release(&record.key).await;
                return Verdict::Retry { delay_s };
            }
        };
        let sent_fallback = matches!(decision, Decision::SendFallback);
        if !matches!(decision, Decision::Refuse(..)) {
            let now_s = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
            let window_open = person.as_ref().map(|p| p.facts.service_window_open(now_s));
            if limit::counts_send(request, sent_fallback, window_open)
                && let Some(verdict) = self.admit(record, request, person.as_ref(), run).await
            {
                return verdict;
            }
        }
        let result = match decision {
            Decision::Refuse(status, reason) => {
                telemetry::emit(FUNCTION, Some(("Refusal", reason)), &[("Refused", 1.0)]);
                let mut outcome = base.refused(status, reason);
                outcome.at = now_ms();
                return self.finish(record, &outcome).await;
            }
            Decision::SendFallback => self.send(request, true, slot_us, run).await.map(|accepted| (accepted, true)),
            Decision::Send => self.send(request, false, slot_us, run).await.map(|accepted| (accepted, false)),
        };
        let result = match result {
            // The window is closed: send the fallback template instead, when there is one.
            Err(GraphFailure::Api { error, http_status })
                if error.code == graph_error::WINDOW_CLOSED && !sent_fallback =>
            {
                self.note_window_closed(request).await;
                telemetry::emit(FUNCTION, None, &[("WindowClosedByMeta", 1.0)]);
                if request.fallback.is_some() {
                    // The fallback template reaches a user outside the window: it counts.
                    if let Some(verdict) = self.admit(record, request, person.as_ref(), run).await {
                        return verdict;
                    }
                    self.send(request, true, None, run).await.map(|accepted| (accepted, true))
                } else {
                    Err(GraphFailure::Api { error, http_status })
                }
            }
            other => other,
        };
        match result {
            Ok((accepted, used_fallback)) => {
                telemetry::emit(FUNCTION, Some(("Outcome", "accepted")), &[("Sends", 1.0)]);
                self.learn_links(request, person.as_ref(), &accepted.contacts).await;
                let mut outcome = base.accepted(accepted.wamid, accepted.message_status);
                outcome.used_fallback = used_fallback;
                outcome.at = now_ms();
                self.finish(record, &outcome).await
            }
            Err(GraphFailure::Api { error, http_status }) => {
                let class = graph_error::classify(error.code);
                tracing::warn!(code = error.code, http_status, class = class.as_str(), fbtrace_id = ?error.fbtrace_id, "graph refused the send");
                telemetry::emit(FUNCTION, Some(("Class", class.as_str())), &[("SendFailures", 1.0)]);
                match class {
                    ErrorClass::Permanent => {
                        self.note_template_error(request, error.code).await;
                        let mut outcome = base.failed(Some(error.code), class, error.message.clone());
                        outcome.at = now_ms();
                        self.finish(record, &outcome).await
                    }
                    ErrorClass::Retryable => {
                        self.release(&record.key).await;
                        self.retry_delay(request, person.as_ref(), error.code).await
                    }
                    ErrorClass::RefreshToken => {
                        self.release(&record.key).await;
                        Verdict::StopLine {
                            reason: format!("the access token was refused twice (code {})", error.code),
                            hold: None,
                        }
                    }
                    ErrorClass::StopTheLine => {
                        self.release(&record.key).await;
                        Verdict::StopLine {
                            reason: format!("account-level block (code {})", error.code),
                            hold: Some(error.code),
                        }
                    }
                }
            }
            Err(GraphFailure::Ambiguous(reason)) if !retries_ambiguous(request) => {
                tracing::warn!(%reason, ambiguous = true, "send outcome unknown; at_most_once: not retried");
                telemetry::emit(FUNCTION, None, &[("AmbiguousSends", 1.0), ("UnknownOutcomes", 1.0)]);
                let mut outcome = base.unknown(policy::UNKNOWN_AMBIGUOUS);
                outcome.at = now_ms();
                self.finish(record, &outcome).await
            }
            Err(GraphFailure::Ambiguous(reason)) => {
                // The message may have been accepted: keep the claim until it expires, so that a
                // retry (which may duplicate it) happens only after this invocation is over.
                tracing::warn!(%reason, ambiguous = true, "send outcome unknown; will retry after the claim expires");
                telemetry::emit(FUNCTION, None, &[("AmbiguousSends", 1.0)]);
                Verdict::Retry { delay_s: None }
            }
            Err(GraphFailure::Unreachable(reason)) if reason == STOPPED || reason == NEAR_DEADLINE => {
                self.release(&record.key).await;
                Verdict::Retry { delay_s: None }
            }
            Err(GraphFailure::Unreachable(reason)) if reason == NO_SLOT => {
                self.release(&record.key).await;
                let configured = u64::try_from(self.config.slot_lead.as_micros()).unwrap_or(0);
                tracing::warn!(
                    lead_ms = self.lead.lead_us(configured) / 1000,
                    "no on-time send slot within the horizon; retrying in 1 s"
                );
                telemetry::emit(FUNCTION, None, &[("SlotsUnavailable", 1.0)]);
                Verdict::Retry { delay_s: Some(1) }
            }
            Err(GraphFailure::Unreachable(reason)) => {
                tracing::warn!(%reason, "graph unreachable; retrying later");
                self.release(&record.key).await;
                Verdict::Retry { delay_s: None }
            }
        }
    }

    /// The facts the send policy needs (the person the recipient resolves to, through every id
    /// linked to it, and the template's learned category when it matters), and the policy's
    /// answer ([`wa_core::policy::decide`]). The person is kept for what follows the send.
    async fn decide(&self, request: &SendRequest) -> Result<(Decision, Option<Person>), StoreError> {
        let Some(to) =
            request.to.as_deref().filter(|_| policy::applies(request, self.config.enforce_conversation_rules))
        else {
            return Ok((Decision::Send, None));
        };
        let person = identity::resolve(&self.conversations, &request.phone_number_id, to).await?;
        let learned = match policy::template_needed(request, &person.facts) {
            Some((name, language)) => wa_core::templates::learned_category(&self.conversations, name, language).await?,
            None => None,
        };
        let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        Ok((policy::decide(request, &person.facts, learned.as_deref(), now), Some(person)))
    }

    /// Meta's messaging limit for a business-initiated template ([`wa_core::limit`]): `None` to
    /// send (the user is counted, was reached in the window already, or no limit applies); else
    /// the record's verdict, its claim released: deferred until the window has room for a new
    /// user (never failed), or retried when the window cannot be read.
    async fn admit(
        &self,
        record: &Prepared<'_>,
        request: &SendRequest,
        person: Option<&Person>,
        run: &Run,
    ) -> Option<Verdict> {
        let portfolio = self.config.portfolios.of(&request.phone_number_id);
        // Counted by the id sent to; reached by any of the person's ids (a person written to
        // by phone and then by BSUID may be counted twice, never held back once reached).
        let user = identity::normalize_id(request.to.as_deref().unwrap_or_default());
        let mut ids: Vec<&str> = person.map(|p| p.ids.iter().map(String::as_str).collect()).unwrap_or_default();
        if !ids.contains(&user) {
            ids.push(user);
        }
        let window_of = |windows: &std::sync::Mutex<HashMap<String, Window>>| {
            let all = windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.get(portfolio).cloned().unwrap_or_default()
        };
        let Some(windows) = &run.windows else {
            self.release(&record.key).await;
            return Some(Verdict::Retry { delay_s: None });
        };
        for _ in 0..4 {
            let now = now_ms() / 1000;
            let current = window_of(windows);
            let tier = current.tier_or(self.config.messaging_limit);
            let counted = match limit::gate(tier, &current.buckets, now) {
                Gate::Open => return None,
                Gate::Count(max) => {
                    let count = limit::count(max, &current.buckets, now);
                    match self.throttle.count_user(portfolio, user, &count).await {
                        Ok(Counted::New) => {
                            let mut buckets = current.buckets;
                            *buckets.entry(count.hour).or_default() += 1;
                            let used = limit::reached(&buckets, now) as f64 * 100.0 / max as f64;
                            // The busiest portfolio's share drives the alarm; `wa stats` tells them apart.
                            telemetry::emit(FUNCTION, None, &[("MessagingLimitUsed", used)]);
                            if let Ok(mut all) = windows.lock() {
                                all.insert(portfolio.to_owned(), Window { tier: current.tier, buckets });
                            }
                            return None;
                        }
                        other => other,
                    }
                }
                Gate::Full { until_s } => match self.reached_at(portfolio, &ids).await {
                    Ok(Some(at)) if at + limit::WINDOW_S > now => return None,
                    Ok(_) => {
                        let delay_s = limit::defer_seconds(until_s, now);
                        tracing::info!(delay_s, "messaging limit reached: deferring a send to a new user");
                        telemetry::emit(FUNCTION, None, &[("LimitDeferrals", 1.0)]);
                        self.release(&record.key).await;
                        return Some(Verdict::Retry { delay_s: Some(delay_s) });
                    }
                    Err(error) => Err(error),
                },
            };
            match counted {
                Ok(Counted::Already) => return None,
                // Full, or changed since it was read: read it again and decide again.
                Ok(Counted::Full | Counted::New) => match self.throttle.limit_facts(&[], &[portfolio]).await {
                    Ok(mut facts) => {
                        if let (Some(window), Ok(mut all)) = (facts.windows.remove(portfolio), windows.lock()) {
                            all.insert(portfolio.to_owned(), window);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the messaging limit; retrying later");
                        break;
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "cannot count the user against the messaging limit; retrying later");
                    break;
                }
            }
        }
        self.release(&record.key).await;
        Some(Verdict::Retry { delay_s: Some(1) })
    }

    /// When any of a person's ids was last counted in the portfolio's window.
    async fn reached_at(&self, portfolio: &str, ids: &[&str]) -> Result<Option<u64>, StoreError> {
        let mut latest = None;
        for id in ids {
            latest = latest.max(self.throttle.reached_at(portfolio, id).await?);
        }
        Ok(latest)
    }

    /// A template send checked against the registry ([`wa_core::templates::check_send`]):
    /// `Err(reason)` ends it with a failed outcome, no Graph call.
    async fn check_template(&self, request: &SendRequest) -> Result<Result<(), String>, StoreError> {
        let Some((name, language)) = wa_core::templates::template_of(&request.message) else { return Ok(Ok(())) };
        let facts = wa_core::templates::registered(&self.conversations, name, language).await?;
        Ok(wa_core::templates::check_send(&request.message, facts.as_ref(), self.config.refuse_unknown_templates))
    }

    /// Meta's answer says something about the template (132001, 132015, 132016): the registry
    /// learns it, so that the next sends are refused before any Graph call.
    async fn note_template_error(&self, request: &SendRequest, code: i64) {
        let (Some(status), Some((name, language))) =
            (wa_core::templates::status_after_error(code), wa_core::templates::template_of(&request.message))
        else {
            return;
        };
        let update = TemplateFacts { status: Some(status.to_owned()), ..TemplateFacts::default() };
        if let Err(error) = self.conversations.record_template(name, language, &update).await {
            tracing::warn!(%error, "cannot record the template's status");
        }
    }

    /// A request naming a file in S3 becomes one naming Meta's media id: the object's type and size
    /// checked against Meta's rules (no Graph call when they fail), the id taken from the shared
    /// cache, else the file uploaded by the one sender that claims it (others wait for it).
    async fn prepare_media(&self, request: &SendRequest) -> MediaReady {
        let Some(s3) = S3Media::of(&request.message) else { return MediaReady::Unchanged };
        let later = |reason: String| MediaReady::Later { delay_s: None, reason };
        let meta = match self.objects.head(&s3.bucket, &s3.key).await {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                return MediaReady::Failed {
                    code: None,
                    reason: format!("media.s3.missing: no object {} in bucket {}", s3.key, s3.bucket),
                };
            }
            Err(error) => return later(error.to_string()),
        };
        let mime = object_mime(meta.content_type.as_deref(), &s3.key);
        if let Err(violation) = check_file(s3.kind, &mime, meta.size) {
            return MediaReady::Failed { code: None, reason: violation.to_string() };
        }
        let phone = request.phone_number_id.as_str();
        let digest = s3.digest(meta.etag.as_deref());
        let now = now_ms();
        match self.idempotency.media_id(phone, &digest, now / 1000).await {
            Ok(Some(id)) => {
                telemetry::emit(FUNCTION, None, &[("MediaIdCacheHits", 1.0)]);
                return MediaReady::Replaced(Box::new(SendRequest {
                    message: s3.with_id(&request.message, &id),
                    ..request.clone()
                }));
            }
            Ok(None) => {}
            Err(error) => return later(error.to_string()),
        }
        match self.idempotency.claim_upload(phone, &digest, now, now + UPLOAD_CLAIM_MS).await {
            Ok(true) => {}
            // Another sender is uploading it: this request sends by its id shortly.
            Ok(false) => {
                return MediaReady::Later { delay_s: Some(2), reason: "another sender is uploading the file".into() };
            }
            Err(error) => return later(error.to_string()),
        }
        let uploaded = self.upload(request, &s3, &mime).await;
        let id = match uploaded {
            Ok(id) => id,
            Err(ready) => {
                // Another sender may try at once (it would wait for the claim to expire otherwise).
                if let Err(error) = self.idempotency.release_upload(phone, &digest).await {
                    tracing::warn!(%error, "cannot release the upload claim; it expires in 2 minutes");
                }
                return ready;
            }
        };
        telemetry::emit(FUNCTION, None, &[("MediaUploads", 1.0)]);
        if let Err(error) = self.idempotency.put_media_id(phone, &digest, &id, now / 1000 + MEDIA_ID_TTL_S).await {
            tracing::warn!(%error, "cannot cache the uploaded media id; the next send uploads again");
        }
        MediaReady::Replaced(Box::new(SendRequest { message: s3.with_id(&request.message, &id), ..request.clone() }))
    }

    /// Reads the object and uploads it; a failure says what becomes of the request.
    async fn upload(&self, request: &SendRequest, s3: &S3Media, mime: &str) -> Result<String, MediaReady> {
        let later = |reason: String| MediaReady::Later { delay_s: None, reason };
        let phone = request.phone_number_id.as_str();
        let token = self.token(phone, false).await.map_err(|e| later(e.to_string()))?;
        let bytes = self.objects.read(&s3.bucket, &s3.key).await.map_err(|e| later(e.to_string()))?;
        match self.graph.upload_media(phone, &token, mime, &s3.filename(&request.message), bytes).await {
            Ok(id) => Ok(id),
            Err(GraphFailure::Api { error, .. })
                if graph_error::classify(error.code) == ErrorClass::Permanent || error.code == 131_053 =>
            {
                Err(MediaReady::Failed { code: Some(error.code), reason: error.message })
            }
            Err(failure) => Err(later(failure.to_string())),
        }
    }

    /// Links the ids Meta's answer names (`contacts[].input / wa_id / user_id`) unless the person
    /// already has them all, so that the statuses and replies to come reach this person. Not when
    /// the conversation rules are off (nothing here reads the links then; the event processor
    /// learns the same from the statuses' contacts): no writes per send for nothing.
    async fn learn_links(&self, request: &SendRequest, person: Option<&Person>, contacts: &[serde_json::Value]) {
        let Some(person) = person else { return };
        for contact in contacts {
            let ids = identity::send_response_ids(contact);
            let known = ids.ids().iter().all(|id| person.ids.contains(id));
            if !ids.links_anything() || known {
                continue;
            }
            if let Err(error) = self.conversations.link(&request.phone_number_id, &ids.ids()).await {
                // The event processor learns the same link from the statuses that follow.
                tracing::warn!(%error, "cannot record the recipient's ids");
            }
        }
    }

    async fn note_window_closed(&self, request: &SendRequest) {
        if let Some(to) = request.to.as_deref() {
            let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
            if let Err(error) =
                self.conversations.mark_window_closed(&request.phone_number_id, identity::normalize_id(to), now).await
            {
                tracing::warn!(%error, "cannot record the closed window");
            }
        }
    }

    /// The time between two send slots of the number: its rate (configured, else learned, else
    /// the default) at the pacing factor.
    fn interval_us(&self, phone_number_id: &str, run: &Run) -> u64 {
        paced_interval_us(self.config.rate(phone_number_id, &run.rates), self.config.pacing)
    }

    /// How late after its slot a send of the number may still go out ([`max_lateness_us`]).
    fn lateness_us(&self, phone_number_id: &str, run: &Run) -> u64 {
        max_lateness_us(self.config.rate(phone_number_id, &run.rates), self.interval_us(phone_number_id, run))
    }

    /// Reserves `count` slots starting at least the current lead from now (a batch's: the lead
    /// its records need to get ready too), and records how long the reservation took (see
    /// [`SlotLead`]).
    async fn reserve(
        &self,
        phone_number_id: &str,
        count: u32,
        interval_us: u64,
        horizon_us: u64,
        batch: bool,
    ) -> Result<Option<wa_core::ratelimit::Reservation>, StoreError> {
        let configured = u64::try_from(self.config.slot_lead.as_micros()).unwrap_or(0);
        let lead = if batch { self.lead.batch_lead_us(configured) } else { self.lead.lead_us(configured) };
        let started = now_us();
        let result = self.throttle.reserve(phone_number_id, count, interval_us, started + lead, horizon_us).await;
        self.lead.observe(now_us().saturating_sub(started));
        result
    }

    /// Reserves a send slot for the number in the shared state and waits for it. A wake-up later
    /// than [`max_lateness_us`] (a busy host) takes a fresh slot instead of sending late, so that
    /// sends never bunch up: each goes out within that of a slot of its own. False when no
    /// slot can be had within the horizon (the record is retried later).
    async fn wait_for_slot(&self, phone_number_id: &str, run: &Run) -> bool {
        let interval = self.interval_us(phone_number_id, run);
        let lateness = self.lateness_us(phone_number_id, run);
        let horizon = u64::try_from(self.config.slot_horizon.as_micros()).unwrap_or(u64::MAX);
        for _ in 0..5 {
            let reservation = match self.reserve(phone_number_id, 1, interval, horizon, false).await {
                Ok(Some(reservation)) => reservation,
                Ok(None) => return false,
                Err(error) => {
                    tracing::warn!(%error, "cannot reserve a send slot");
                    return false;
                }
            };
            if wait_until(reservation.start_us, lateness).await {
                return true;
            }
        }
        false
    }

    /// One Graph call at a send slot of its own, with one token refresh (and a new slot) on 190/0.
    async fn send(
        &self,
        request: &SendRequest,
        use_fallback: bool,
        slot_us: Option<u64>,
        run: &Run,
    ) -> Result<GraphAccepted, GraphFailure> {
        let body = match request.graph_body(use_fallback) {
            Ok(body) => body,
            Err(violation) => {
                return Err(GraphFailure::Api {
                    http_status: 0,
                    error: Box::new(wa_core::graph_error::GraphErrorBody {
                        code: 100,
                        message: violation.to_string(),
                        ..Default::default()
                    }),
                });
            }
        };
        let phone = request.phone_number_id.as_str();
        // Everything that may take time happens before the slot, so that the send itself is on time.
        let token = self.token(phone, false).await?;
        let on_time = match slot_us {
            Some(slot) => {
                self.lead.observe_arrival(now_us().saturating_sub(slot));
                wait_until(slot, self.lateness_us(phone, run)).await
            }
            None => false,
        };
        if !on_time && !self.wait_for_slot(phone, run).await {
            return Err(GraphFailure::Unreachable(NO_SLOT.into()));
        }
        // Another group of this batch may have stopped the line while this one waited.
        if run.stop.load(Ordering::SeqCst) {
            return Err(GraphFailure::Unreachable(STOPPED.into()));
        }
        self.time_left(run)?;
        let first = self.graph.send_message(phone, &token, &body).await;
        match first {
            Err(GraphFailure::Api { ref error, .. })
                if graph_error::classify(error.code) == ErrorClass::RefreshToken =>
            {
                tracing::warn!(code = error.code, "access token refused; reloading the secret and retrying once");
                let token = self.token(phone, true).await?;
                if !self.wait_for_slot(phone, run).await {
                    return Err(GraphFailure::Unreachable(NO_SLOT.into()));
                }
                self.time_left(run)?;
                self.graph.send_message(phone, &token, &body).await
            }
            other => other,
        }
    }

    /// A Graph call starts only with time to finish it before the invocation's deadline: its
    /// timeout, then the outcome recorded, published and marked. Later, Lambda's timeout could kill
    /// the process mid-call (the message may go twice) or between publishing and marking (the
    /// outcome may go twice); the record is retried by the next invocation instead.
    fn time_left(&self, run: &Run) -> Result<(), GraphFailure> {
        if now_ms().saturating_add(run.reserve_ms) > run.deadline_ms {
            telemetry::emit(FUNCTION, None, &[("DeadlineDeferrals", 1.0)]);
            return Err(GraphFailure::Unreachable(NEAR_DEADLINE.into()));
        }
        Ok(())
    }

    async fn token(&self, phone_number_id: &str, refresh: bool) -> Result<String, GraphFailure> {
        let source = self.secrets.for_number(phone_number_id);
        let secret =
            if refresh { source.refresh(SecretStage::Current).await } else { source.get(SecretStage::Current).await };
        match secret {
            Ok(Some(secret)) => {
                Ok(secret.phone_number_tokens.get(phone_number_id).unwrap_or(&secret.access_token).clone())
            }
            Ok(None) => Err(GraphFailure::Unreachable("the secret has no AWSCURRENT version".into())),
            Err(error) => Err(GraphFailure::Unreachable(format!("cannot read the access token: {error}"))),
        }
    }

    /// The redelivery delay of a retryable error. The pair-rate back-off counts per person (a phone
    /// and a BSUID of one person share one run of 131056).
    async fn retry_delay(&self, request: &SendRequest, person: Option<&Person>, code: i64) -> Verdict {
        if code == graph_error::PAIR_RATE_LIMIT {
            let to = identity::normalize_id(request.to.as_deref().unwrap_or_default());
            let to = person.map_or(to, |p| p.key(to));
            let hits = self.throttle.pair_hit(&request.phone_number_id, to, now_ms()).await.unwrap_or(1);
            let seconds = graph_error::pair_rate_backoff_seconds(hits.saturating_sub(1));
            telemetry::emit(FUNCTION, None, &[("PairRateHits", 1.0)]);
            return Verdict::Retry { delay_s: Some(u32::try_from(seconds).unwrap_or(900)) };
        }
        if matches!(code, 4 | 80_007 | graph_error::THROUGHPUT_LIMIT) {
            telemetry::emit(FUNCTION, None, &[("Throttled", 1.0)]);
            return Verdict::Retry { delay_s: Some(self.config.throttle_delay_s) };
        }
        Verdict::Retry { delay_s: None }
    }

    async fn release(&self, key: &str) {
        if let Err(error) = self.idempotency.release(key).await {
            tracing::warn!(%error, "cannot release the claim; the retry waits for it to expire");
        }
    }

    /// Records the outcome (with the request, when it has fallback channels: the fallback function
    /// reads them from the record), publishes it, marks it published.
    async fn finish(&self, record: &Prepared<'_>, outcome: &SendOutcome) -> Verdict {
        let key = record.key.as_str();
        let request = record
            .request
            .as_ref()
            .filter(|r| r.fallback_channels.is_some() && record.violation.is_none())
            .and_then(|r| serde_json::to_string(r).ok());
        let text = match serde_json::to_string(outcome) {
            Ok(text) => text,
            Err(error) => {
                return Verdict::StopLine { reason: format!("cannot serialize an outcome: {error}"), hold: None };
            }
        };
        let expires = now_ms() / 1000 + self.config.record_ttl.as_secs();
        let mut recorded = false;
        for attempt in 0..3u64 {
            match self.idempotency.complete(key, &text, outcome.wamid.as_deref(), request.as_deref(), expires).await {
                Ok(()) => {
                    recorded = true;
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "cannot record a finished send");
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                }
            }
        }
        if !recorded {
            // The claim stays INPROGRESS until it expires; the retry after that may resend.
            telemetry::emit(FUNCTION, None, &[("AmbiguousSends", 1.0)]);
            return Verdict::Retry { delay_s: None };
        }
        self.publish_stored(key, &text).await
    }

    async fn publish_stored(&self, key: &str, outcome: &str) -> Verdict {
        if let Err(error) = self.events.publish(&[outcome.to_owned()]).await {
            tracing::warn!(%error, "cannot publish the outcome; the redelivery will");
            return Verdict::Retry { delay_s: None };
        }
        if let Err(error) = self.idempotency.mark_published(key).await {
            tracing::warn!(%error, "outcome published but not marked; a redelivery may publish it again");
        }
        Verdict::Done
    }
}
