//! The state table (`STATE_TABLE`) in DynamoDB: single-table design, string keys `pk` and `sk`,
//! TTL attribute `expires_at` (Unix seconds). Items written here:
//!
//! | pk | sk | attributes | purpose |
//! |---|---|---|---|
//! | `SEND#<idempotency key>` | `SEND` | `state` (INPROGRESS, COMPLETED), `in_progress_until` (ms), `outcome` (JSON), `wamid`, `published`, `expires_at`, `request` (the request, when it has fallback channels) | never send twice; the sparse index `by_wamid` leads from a message to its send request |
//! | `RATE#<phone_number_id>` | `RATE` | `tat_us` | per-number send slots shared by all senders |
//! | `MEDIAID#<phone_number_id>#<object digest>` | `MEDIAID` | `media_id`, `upload_until` (ms), `expires_at` | an uploaded file's media id (25 days), shared by all senders |
//! | `HOLD#<phone_number_id>` | `HOLD` | `code`, `since_ms`, `until_ms`, `strikes`, `probe_until` | a number held after an account-level error ([`wa_core::hold`]) |
//! | `PAIR#<phone_number_id>#<recipient>` | `PAIR` | `last_ms`, `hits`, `expires_at` | consecutive 131056 hits of a recipient (4^X backoff) |
//!
//! | `SEND#event:<event_id>` | `SEND` | as `SEND#` (14 days) | event-processor dedupe |
//! | `MSG#<wamid>` | `MSG` | `status`, `rank`, `status_at`, `recipient`, `callback_data`, `pricing_*`, `costed` | message status (monotonic); `costed` is set in the same transaction as the ledger's counter |
//! | `CONV#<phone_number_id>#<id>` | `CONV` | `last_inbound_at`, `window_closed_at`, `free_entry_point_until`, `profile_name`, `username`, `marketing_opt_out`, `consent_at`, `links` (string set), `retired_at` | windows and consent of one id (phone, BSUID or parent BSUID); `links` names the person's other ids ([`wa_core::identity`]) |
//! | `COST#<phone_number_id>#<YYYY-MM>` | `COST` | one counter per `<category>#<pricing type>` | billable messages for the cost ledger |
//! | `STATS#<phone_number_id>#<YYYY-MM>` | `STATS` | one counter per `status#<status>` | statuses applied, for `wa stats` |
//! | `CAMPAIGN#<campaign>` | `VARIANT#<variant>` | `queued`, `suppressed` | what `wa campaign send` queued and suppressed, per variant |
//! | `LIMIT#<portfolio>` | `LIMIT` | `tier` (Meta's announced limit, -1 unlimited), `tier_at`, `h<unix hour>` (users first reached in that hour) | the portfolio's messaging-limit window ([`wa_core::limit`]) |
//! | `REACH#<portfolio>#<user>` | `REACH` | `at`, `expires_at` (2 days) | when a user was last counted in the window |
//! | `DISPLAY#<display number>` | `DISPLAY` | `phone_number_id`, `rate` | a number as quality webhooks name it; `rate` after `THROUGHPUT_UPGRADE` |
//! | `NUMBER#<phone_number_id>` | `NUMBER` | `rate`, `display` | the upgraded send rate the senders read |
//! | `TEMPLATE#<name>#<language>` | `TEMPLATE` | `status`, `category`, `quality`, `parameter_format`, `body_params`, `header_params` | the template registry: from template webhooks, `wa templates pull` and Meta's send errors |
//!
//! An item past its `expires_at` but not yet deleted by DynamoDB's TTL counts as absent.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use wa_core::conversation::StatusUpdate;
use wa_core::hold::Hold;
use wa_core::identity::ConversationRecord;
use wa_core::ports::{
    CampaignStore, Claim, ConversationStore, HoldStore, IdempotencyStore, MediaIdCache, StatusApplied, StoreError,
    ThrottleStore,
};
use wa_core::ratelimit::{Reservation, reserve};

use crate::aws::describe;

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";
/// How long consecutive pair-rate hits are remembered.
const PAIR_MEMORY_MS: u64 = 15 * 60 * 1000;

/// The sparse global secondary index on `SEND#` items' `wamid` (keys only), as template.yaml
/// creates it.
pub const WAMID_INDEX: &str = "by_wamid";

/// What the table knows about one message (`wa stats --message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The furthest status applied.
    pub status: Option<String>,
    /// When that status happened (Unix seconds).
    pub status_at: Option<u64>,
    /// The producer's correlation data, from the status webhooks.
    pub callback_data: Option<String>,
    /// Meta's pricing category, when a status carried pricing.
    pub pricing_category: Option<String>,
    /// Meta's pricing type (`regular`, `free_customer_service`, ...).
    pub pricing_type: Option<String>,
    /// The idempotency key of the send request that produced the message, when it went through
    /// this pipeline.
    pub idempotency_key: Option<String>,
}

/// The state table.
#[derive(Debug, Clone)]
pub struct StateTable {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// The send-slot pointer (`tat_us`) each number had after this process's last reservation:
    /// a number whose pointer is behind now is tried as idle first (one conditional write where
    /// trying it as busy first costs two).
    slot_hints: std::sync::Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

pub(crate) fn store_error<E: std::error::Error>(error: &E) -> StoreError {
    StoreError(describe(error))
}

/// The result of a conditional write: `true` when written, `false` when its condition did not hold.
pub(crate) fn conditional<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(store_error(&e)),
    }
}

/// The reasons DynamoDB gives, item by item, for a cancelled transaction (`None`: not cancelled).
pub(crate) fn cancellation_codes(
    error: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Option<Vec<&str>> {
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        cancelled,
    ) = error
    else {
        return None;
    };
    Some(cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect())
}

impl StateTable {
    /// The table named `table`.
    #[must_use]
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), slot_hints: std::sync::Arc::default() }
    }

    pub(crate) async fn get(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(out.item)
    }

    /// Reads items by key, consistently, 100 per call, until DynamoDB has returned them all.
    pub(crate) async fn batch_get(
        &self,
        mut pending: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::with_capacity(pending.len());
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            if rounds > 8 {
                return Err(StoreError("items kept coming back unprocessed".into()));
            }
            let chunk: Vec<_> = pending.drain(..pending.len().min(100)).collect();
            let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(chunk))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            if let Some(unprocessed) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                pending.extend(unprocessed.keys);
                tokio::time::sleep(std::time::Duration::from_millis(20 * rounds)).await;
            }
        }
        Ok(items)
    }

    fn send_pk(idempotency_key: &str) -> String {
        format!("SEND#{idempotency_key}")
    }

    fn pair_pk(phone_number_id: &str, to: &str) -> String {
        format!("PAIR#{phone_number_id}#{}", to.trim_start_matches('+'))
    }
}

fn claim_from(item: &HashMap<String, AttributeValue>) -> Claim {
    let state = item.get("state").and_then(|v| v.as_s().ok()).map(String::as_str);
    if state == Some(COMPLETED) {
        Claim::Completed {
            outcome: item.get("outcome").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
            published: item.get("published").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
            owner_until_ms: number(item, "in_progress_until").unwrap_or(0),
        }
    } else {
        Claim::InProgress
    }
}

impl StateTable {
    /// Applies a status if it moves the message forward (see
    /// [`wa_core::conversation::status_advances`]), atomically against concurrent updates, its
    /// pricing in the same write; a status that does not apply still leaves its pricing when the
    /// message has none yet (a second write, only out of order). Says whether the message is in
    /// the cost ledger already, from the item as it was.
    pub async fn apply_status(&self, update: &StatusUpdate<'_>) -> Result<StatusApplied, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let Some(rank) = wa_core::conversation::status_rank(update.status) else {
            return Ok(StatusApplied::default());
        };
        let pk = format!("MSG#{}", update.wamid);
        let expires = n(now_seconds() + 90 * 86_400);
        // failed (rank 9) applies only below read (3); anything else only above the stored rank.
        let ceiling = if *update.status == wa_core::webhook::StatusKind::Failed { 3 } else { rank };
        let mut assignments =
            vec!["#status = :status", "#rank = :rank", "status_at = :at", "expires_at = if_not_exists(expires_at, :e)"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "MSG")))
            .condition_expression("attribute_not_exists(#rank) OR #rank < :ceiling")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(":status", s(update.status.as_str()))
            .expression_attribute_values(":rank", n(rank))
            .expression_attribute_values(":ceiling", n(ceiling))
            .expression_attribute_values(":at", n(update.at.unwrap_or(0)))
            .expression_attribute_values(":e", expires.clone())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(recipient) = update.recipient {
            assignments.push("recipient = :r");
            request = request.expression_attribute_values(":r", s(recipient));
        }
        if let Some(callback) = update.callback_data {
            assignments.push("callback_data = :cb");
            request = request.expression_attribute_values(":cb", s(callback));
        }
        if let Some((category, kind, billable)) = update.pricing {
            assignments.extend(["pricing_category = :c", "pricing_type = :t", "billable = :b", "pricing_model = :m"]);
            request = request
                .expression_attribute_values(":m", s(update.pricing_model.unwrap_or("")))
                .expression_attribute_values(":c", s(category))
                .expression_attribute_values(":t", s(kind))
                .expression_attribute_values(":b", AttributeValue::Bool(billable));
        }
        let request = request.update_expression(format!("SET {}", assignments.join(", ")));
        let costed = |item: Option<&HashMap<String, AttributeValue>>| {
            item.and_then(|i| i.get("costed")).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
        };
        let old = match request.send().await {
            Ok(out) => return Ok(StatusApplied { advanced: true, costed: costed(out.attributes.as_ref()) }),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
                _ => return Err(store_error(&e)),
            },
        };
        // An older status: its pricing only, if the message has none yet.
        if let Some((category, kind, billable)) =
            update.pricing.filter(|_| old.as_ref().is_none_or(|i| !i.contains_key("pricing_category")))
        {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk, "MSG")))
                .update_expression(
                    "SET pricing_category = :c, pricing_type = :t, billable = :b, pricing_model = :m, expires_at = if_not_exists(expires_at, :e)",
                )
                .expression_attribute_values(":m", s(update.pricing_model.unwrap_or("")))
                .expression_attribute_values(":c", s(category))
                .expression_attribute_values(":t", s(kind))
                .expression_attribute_values(":b", AttributeValue::Bool(billable))
                .expression_attribute_values(":e", expires)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
        }
        Ok(StatusApplied { advanced: false, costed: costed(old.as_ref()) })
    }

    /// Records an inbound message from a user: `last_inbound_at` only moves forward (an old,
    /// redelivered message never shortens the window); the profile name is kept up to date.
    pub async fn record_inbound(
        &self,
        phone_number_id: &str,
        user_id: &str,
        at_s: i64,
        profile_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let pk = format!("CONV#{phone_number_id}#{user_id}");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "CONV")))
            .condition_expression("attribute_not_exists(last_inbound_at) OR last_inbound_at < :at")
            .expression_attribute_values(":at", n(at_s));
        let mut expression = "SET last_inbound_at = :at";
        if let Some(name) = profile_name {
            expression = "SET last_inbound_at = :at, profile_name = :name";
            request = request.expression_attribute_values(":name", s(name));
        }
        conditional(request.update_expression(expression).send().await).map(|_| ())
    }

    /// Records a marketing consent change (STOP / START keyword, `user_preferences`, 131050); only
    /// a change newer than the stored one applies.
    pub async fn set_marketing_opt_out(
        &self,
        phone_number_id: &str,
        user_id: &str,
        opted_out: bool,
        at_s: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone_number_id}#{user_id}"), "CONV")))
            .update_expression("SET marketing_opt_out = :out, consent_at = :at")
            .condition_expression("attribute_not_exists(consent_at) OR consent_at <= :at")
            .expression_attribute_values(":out", AttributeValue::Bool(opted_out))
            .expression_attribute_values(":at", n(at_s))
            .send()
            .await;
        conditional(result)
    }

    /// A user's conversation: (last inbound Unix seconds, marketing opt-out, profile name).
    pub async fn conversation(
        &self,
        phone_number_id: &str,
        user_id: &str,
    ) -> Result<Option<(Option<i64>, bool, Option<String>)>, StoreError> {
        let item = self.get(format!("CONV#{phone_number_id}#{user_id}"), "CONV").await?;
        Ok(item.map(|i| {
            let last = i.get("last_inbound_at").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
            let out = i.get("marketing_opt_out").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
            let name = i.get("profile_name").and_then(|v| v.as_s().ok()).cloned();
            (last, out, name)
        }))
    }

    /// Counts one billable message in the month's ledger of the number.
    pub async fn add_cost(
        &self,
        phone_number_id: &str,
        month: &str,
        category: &str,
        pricing_type: &str,
    ) -> Result<(), StoreError> {
        self.add_counter("COST", phone_number_id, month, &format!("{category}#{pricing_type}")).await
    }

    /// Counts one applied status in the month's statistics of the number.
    pub async fn add_status_count(&self, phone_number_id: &str, month: &str, status: &str) -> Result<(), StoreError> {
        self.add_counter("STATS", phone_number_id, month, &format!("status#{status}")).await
    }

    async fn add_counter(
        &self,
        kind: &str,
        phone_number_id: &str,
        month: &str,
        counter: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("{kind}#{phone_number_id}#{month}"), kind)))
            .update_expression("ADD #counter :one")
            .expression_attribute_names("#counter", counter)
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    /// The month's ledger of a number: billable messages by `<category>#<pricing type>`.
    pub async fn costs(&self, phone_number_id: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.counters("COST", phone_number_id, month).await
    }

    /// The month's status counts of a number, by `status#<status>`.
    pub async fn status_counts(&self, phone_number_id: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.counters("STATS", phone_number_id, month).await
    }

    async fn counters(&self, kind: &str, phone_number_id: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let item = self.get(format!("{kind}#{phone_number_id}#{month}"), kind).await?.unwrap_or_default();
        let mut counters: Vec<(String, u64)> = item
            .iter()
            .filter(|(name, _)| name.contains('#') && *name != "pk" && *name != "sk")
            .filter_map(|(name, value)| Some((name.clone(), value.as_n().ok()?.parse().ok()?)))
            .collect();
        counters.sort();
        Ok(counters)
    }

    /// Records a free-entry-point window (72 h, from a status whose pricing type says so); it only
    /// moves forward.
    pub async fn record_free_entry_point(
        &self,
        phone_number_id: &str,
        user_id: &str,
        until_s: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone_number_id}#{user_id}"), "CONV")))
            .update_expression("SET free_entry_point_until = :until")
            .condition_expression("attribute_not_exists(free_entry_point_until) OR free_entry_point_until < :until")
            .expression_attribute_values(":until", n(until_s))
            .send()
            .await;
        conditional(result).map(|_| ())
    }

    /// Counts a billable message in the ledger once per wamid (statuses repeat its pricing).
    pub async fn count_cost_once(
        &self,
        wamid: &str,
        phone_number_id: &str,
        month: &str,
        category: &str,
        pricing_type: &str,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError(e.to_string());
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("MSG#{wamid}"), "MSG")))
            .update_expression("SET costed = :true, expires_at = if_not_exists(expires_at, :e)")
            .condition_expression("attribute_not_exists(costed)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":e", n(now_seconds() + 90 * 86_400))
            .build()
            .map_err(build)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("COST#{phone_number_id}#{month}"), "COST")))
            .update_expression("ADD #counter :one")
            .expression_attribute_names("#counter", format!("{category}#{pricing_type}"))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error().and_then(cancellation_codes) {
                Some(codes) if codes.first() == Some(&"ConditionalCheckFailed") => Ok(false),
                _ => Err(store_error(&e)),
            },
        }
    }

    /// The stored status of a message.
    pub async fn message_status(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        Ok(self.message(wamid).await?.and_then(|m| m.status))
    }

    /// A message's status record and the send request that produced it (through the `by_wamid`
    /// index; eventually consistent, so a send completed a moment ago may not be linked yet).
    pub async fn message(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        let item = self.get(format!("MSG#{wamid}"), "MSG").await?;
        let linked = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(WAMID_INDEX)
            .key_condition_expression("wamid = :wamid")
            .expression_attribute_values(":wamid", s(wamid))
            .limit(1)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let idempotency_key = linked
            .items()
            .first()
            .and_then(|i| i.get("pk"))
            .and_then(|v| v.as_s().ok())
            .and_then(|pk| pk.strip_prefix("SEND#"))
            .map(str::to_owned);
        if item.is_none() && idempotency_key.is_none() {
            return Ok(None);
        }
        let text = |name: &str| item.as_ref().and_then(|i| i.get(name)).and_then(|v| v.as_s().ok()).cloned();
        Ok(Some(MessageRecord {
            status: text("status"),
            status_at: item.as_ref().and_then(|i| number(i, "status_at")),
            callback_data: text("callback_data"),
            pricing_category: text("pricing_category"),
            pricing_type: text("pricing_type"),
            idempotency_key,
        }))
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ConversationStore for StateTable {
    async fn records(&self, phone: &str, ids: &[String]) -> Result<Vec<ConversationRecord>, StoreError> {
        let prefix = format!("CONV#{phone}#");
        let keys: Vec<HashMap<String, AttributeValue>> = {
            let mut unique: Vec<&String> = ids.iter().collect();
            unique.sort();
            unique.dedup();
            unique.into_iter().map(|id| key(format!("{prefix}{id}"), "CONV")).collect()
        };
        let mut records = Vec::with_capacity(keys.len());
        for item in self.batch_get(keys).await? {
            let Some(id) = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| pk.strip_prefix(&prefix)) else {
                continue;
            };
            let int = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
            let mut links: Vec<String> = item.get("links").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
            links.sort();
            records.push(ConversationRecord {
                id: id.to_owned(),
                last_inbound_at: int("last_inbound_at"),
                window_closed_at: int("window_closed_at"),
                free_entry_point_until: int("free_entry_point_until"),
                marketing_opt_out: item
                    .get("marketing_opt_out")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                consent_at: int("consent_at"),
                profile_name: item.get("profile_name").and_then(|v| v.as_s().ok()).cloned(),
                username: item.get("username").and_then(|v| v.as_s().ok()).cloned(),
                links,
                retired_at: int("retired_at"),
            });
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    async fn link(&self, phone: &str, ids: &[String]) -> Result<(), StoreError> {
        let writes = ids.iter().map(|id| {
            let others: Vec<String> = ids.iter().filter(|other| *other != id).cloned().collect();
            async move {
                if others.is_empty() {
                    return Ok(());
                }
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(format!("CONV#{phone}#{id}"), "CONV")))
                    .update_expression("ADD links :others")
                    .expression_attribute_values(":others", AttributeValue::Ss(others))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error(&e))
            }
        });
        futures_util::future::try_join_all(writes).await.map(|_| ())
    }

    async fn detach(&self, phone: &str, id: &str, at_s: i64) -> Result<(), StoreError> {
        // Retired first: from now on no payload from before the change links it again.
        let retired = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone}#{id}"), "CONV")))
            .update_expression("SET retired_at = :at")
            .condition_expression("attribute_not_exists(retired_at) OR retired_at < :at")
            .expression_attribute_values(":at", n(at_s))
            .send()
            .await;
        conditional(retired)?;
        let records = self.records(phone, &[id.to_owned()]).await?;
        for other in records.iter().flat_map(|r| &r.links) {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(format!("CONV#{phone}#{other}"), "CONV")))
                .update_expression("DELETE links :id")
                .expression_attribute_values(":id", AttributeValue::Ss(vec![id.to_owned()]))
                .send()
                .await
                .map_err(|e| store_error(&e))?;
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone}#{id}"), "CONV")))
            .update_expression("REMOVE links")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn status_of(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        let item = self.get(format!("MSG#{wamid}"), "MSG").await?;
        Ok(item.and_then(|i| i.get("status").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn send_key_of(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        Ok(self.message(wamid).await?.and_then(|m| m.idempotency_key))
    }

    async fn record_free_entry_point(&self, phone: &str, user: &str, until_s: i64) -> Result<(), StoreError> {
        StateTable::record_free_entry_point(self, phone, user, until_s).await
    }

    async fn record_template_category(&self, name: &str, language: &str, category: &str) -> Result<(), StoreError> {
        let update = wa_core::templates::TemplateUpdate { category: Some(category.to_owned()), ..Default::default() };
        self.record_template(name, language, &update).await
    }

    async fn record_template(
        &self,
        name: &str,
        language: &str,
        update: &wa_core::templates::TemplateUpdate,
    ) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("TEMPLATE#{name}#{language}"), "TEMPLATE")));
        for (attribute, value) in [
            ("status", update.status.clone().map(s)),
            ("category", update.category.clone().map(s)),
            ("quality", update.quality.clone().map(s)),
            ("parameter_format", update.parameter_format.clone().map(s)),
            ("body_params", update.body_params.map(n)),
            ("header_params", update.header_params.map(n)),
        ] {
            if let Some(value) = value {
                sets.push(format!("#{attribute} = :{attribute}"));
                request = request
                    .expression_attribute_names(format!("#{attribute}"), attribute)
                    .expression_attribute_values(format!(":{attribute}"), value);
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn template(
        &self,
        name: &str,
        language: &str,
    ) -> Result<Option<wa_core::templates::TemplateFacts>, StoreError> {
        let item = self.get(format!("TEMPLATE#{name}#{language}"), "TEMPLATE").await?;
        Ok(item.map(|i| {
            let text = |a: &str| i.get(a).and_then(|v| v.as_s().ok()).cloned();
            let count = |a: &str| number(&i, a).and_then(|v| u32::try_from(v).ok());
            wa_core::templates::TemplateFacts {
                status: text("status"),
                category: text("category"),
                quality: text("quality"),
                parameter_format: text("parameter_format"),
                body_params: count("body_params"),
                header_params: count("header_params"),
            }
        }))
    }

    async fn template_category(&self, name: &str, language: &str) -> Result<Option<String>, StoreError> {
        let item = self.get(format!("TEMPLATE#{name}#{language}"), "TEMPLATE").await?;
        Ok(item.and_then(|i| i.get("category").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn count_status(&self, phone: &str, month: &str, status: &str) -> Result<(), StoreError> {
        self.add_status_count(phone, month, status).await
    }

    async fn mark_window_closed(&self, phone: &str, user: &str, at_s: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone}#{user}"), "CONV")))
            .update_expression("SET window_closed_at = :at")
            .expression_attribute_values(":at", n(at_s))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn record_inbound(
        &self,
        phone: &str,
        user: &str,
        at_s: i64,
        profile_name: Option<&str>,
    ) -> Result<(), StoreError> {
        StateTable::record_inbound(self, phone, user, at_s, profile_name).await
    }

    async fn record_username(&self, phone: &str, user: &str, username: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CONV#{phone}#{user}"), "CONV")))
            .update_expression("SET username = :u")
            .expression_attribute_values(":u", s(username))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn set_marketing_opt_out(
        &self,
        phone: &str,
        user: &str,
        opted_out: bool,
        at_s: i64,
    ) -> Result<bool, StoreError> {
        StateTable::set_marketing_opt_out(self, phone, user, opted_out, at_s).await
    }

    async fn apply_status(&self, update: &StatusUpdate<'_>) -> Result<StatusApplied, StoreError> {
        StateTable::apply_status(self, update).await
    }

    async fn count_cost_once(
        &self,
        wamid: &str,
        phone: &str,
        month: &str,
        category: &str,
        pricing_type: &str,
    ) -> Result<bool, StoreError> {
        StateTable::count_cost_once(self, wamid, phone, month, category, pricing_type).await
    }
}

impl IdempotencyStore for StateTable {
    async fn claim(&self, key_text: &str, now_ms: u64, in_progress_until_ms: u64) -> Result<Claim, StoreError> {
        let mut item = key(Self::send_pk(key_text), "SEND");
        item.insert("state".into(), s(IN_PROGRESS));
        item.insert("in_progress_until".into(), n(in_progress_until_ms));
        // The claim itself expires with the record's TTL after a day if the process never returns.
        item.insert("expires_at".into(), n(now_ms / 1000 + 86_400));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :inprogress AND in_progress_until < :now_ms) OR expires_at < :now_s",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .expression_attribute_values(":now_ms", n(now_ms))
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            // An unfinished attempt's claim taken over (a record past its TTL is a new claim).
            Ok(put) => Ok(match put.attributes() {
                Some(old)
                    if old.get("state").and_then(|v| v.as_s().ok()).is_some_and(|s| s == IN_PROGRESS)
                        && old
                            .get("expires_at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_some_and(|e| e >= now_ms / 1000) =>
                {
                    Claim::Reclaimed
                }
                _ => Claim::Acquired,
            }),
            Err(e) => {
                let Some(failure) = e.as_service_error().filter(|s| s.is_conditional_check_failed_exception()) else {
                    return Err(store_error(&e));
                };
                let old = match failure {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                        c.item.clone()
                    }
                    _ => None,
                };
                let old = match old {
                    Some(item) => Some(item),
                    None => self.get(Self::send_pk(key_text), "SEND").await?,
                };
                Ok(old.as_ref().map_or(Claim::InProgress, claim_from))
            }
        }
    }

    async fn complete(
        &self,
        key_text: &str,
        outcome: &str,
        wamid: Option<&str>,
        request: Option<&str>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        let mut set =
            "SET #state = :completed, outcome = :outcome, published = :false, expires_at = :expires".to_owned();
        let mut values = HashMap::from([
            (":completed".to_owned(), s(COMPLETED)),
            (":outcome".to_owned(), s(outcome)),
            (":false".to_owned(), AttributeValue::Bool(false)),
            (":expires".to_owned(), n(expires_at_s)),
        ]);
        if let Some(wamid) = wamid {
            set.push_str(", wamid = :wamid");
            values.insert(":wamid".to_owned(), s(wamid));
        }
        let mut names = HashMap::from([("#state".to_owned(), "state".to_owned())]);
        if let Some(request) = request {
            // `request` is one of DynamoDB's reserved words.
            set.push_str(", #request = :request");
            values.insert(":request".to_owned(), s(request));
            names.insert("#request".to_owned(), "request".to_owned());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(Self::send_pk(key_text), "SEND")))
            .update_expression(set)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn stored_request(&self, key_text: &str) -> Result<Option<String>, StoreError> {
        let item = self.get(Self::send_pk(key_text), "SEND").await?;
        Ok(item.and_then(|item| item.get("request").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn complete_published(&self, key_text: &str, outcome: &str, expires_at_s: u64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(Self::send_pk(key_text), "SEND")))
            .update_expression("SET #state = :completed, outcome = :outcome, published = :true, expires_at = :expires")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":expires", n(expires_at_s))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn mark_published(&self, key_text: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(Self::send_pk(key_text), "SEND")))
            .update_expression("SET published = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn release(&self, key_text: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(Self::send_pk(key_text), "SEND")))
            .condition_expression("#state = :inprogress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .send()
            .await;
        conditional(result).map(|_| ())
    }
}

impl ThrottleStore for StateTable {
    async fn reserve(
        &self,
        phone_number_id: &str,
        count: u32,
        interval_us: u64,
        now_us: u64,
        horizon_us: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        let pk = format!("RATE#{phone_number_id}");
        let span = u64::from(count) * interval_us;
        let horizon_end = now_us.saturating_add(horizon_us);
        let hint = |tat: u64| {
            if let Ok(mut hints) = self.slot_hints.lock() {
                hints.insert(phone_number_id.to_owned(), tat);
            }
        };
        let mut idle_first =
            self.slot_hints.lock().ok().and_then(|h| h.get(phone_number_id).copied()).is_none_or(|tat| tat < now_us);
        for _ in 0..20 {
            if idle_first {
                // Idle number (or first use): start now.
                let idle = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk.clone(), "RATE")))
                    .update_expression("SET tat_us = :new_tat")
                    .condition_expression("attribute_not_exists(tat_us) OR tat_us < :now")
                    .expression_attribute_values(":new_tat", n(now_us + span))
                    .expression_attribute_values(":now", n(now_us))
                    .send()
                    .await;
                if conditional(idle)? {
                    hint(now_us + span);
                    return Ok(reserve(None, now_us, count, interval_us, horizon_us));
                }
            }
            idle_first = true;
            // Busy number: append to the reserved time (one conditional write, no read).
            let busy = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), "RATE")))
                .update_expression("SET tat_us = tat_us + :span")
                .condition_expression("tat_us >= :now AND tat_us <= :horizon_end")
                .expression_attribute_values(":span", n(span))
                .expression_attribute_values(":now", n(now_us))
                .expression_attribute_values(":horizon_end", n(horizon_end))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match busy {
                Ok(out) => {
                    let new_tat = out.attributes.as_ref().and_then(|a| number(a, "tat_us")).unwrap_or(now_us + span);
                    hint(new_tat);
                    return Ok(Some(Reservation { start_us: new_tat - span, interval_us, count, new_tat_us: new_tat }));
                }
                Err(e) => match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c),
                    ) => c.item.as_ref().and_then(|item| number(item, "tat_us")),
                    _ => return Err(store_error(&e)),
                },
            };
            if old.is_some_and(|tat| tat > horizon_end) {
                return Ok(None);
            }
            // Idle (or another sender moved the pointer meanwhile): go round again, idle first.
        }
        Err(StoreError("rate slot pointer kept changing; try again".into()))
    }

    async fn pair_hit(&self, phone_number_id: &str, to: &str, now_ms: u64) -> Result<u32, StoreError> {
        let pk = Self::pair_pk(phone_number_id, to);
        let previous = self.get(pk.clone(), "PAIR").await?;
        let recent = previous
            .as_ref()
            .and_then(|item| Some((number(item, "last_ms")?, number(item, "hits").unwrap_or(0))))
            .filter(|(last, _)| now_ms.saturating_sub(*last) < PAIR_MEMORY_MS);
        let hits = recent.map_or(1, |(_, hits)| u32::try_from(hits).unwrap_or(u32::MAX).saturating_add(1));
        let mut item = key(pk, "PAIR");
        item.insert("last_ms".into(), n(now_ms));
        item.insert("hits".into(), n(hits));
        item.insert("expires_at".into(), n(now_ms / 1000 + PAIR_MEMORY_MS / 1000));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(hits)
    }
}

impl StateTable {
    /// Every held number (`wa hold list`), by scanning the table's `HOLD#` items.
    pub async fn holds(&self) -> Result<Vec<(String, Hold)>, StoreError> {
        let mut holds = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :hold)")
                .expression_attribute_values(":hold", s("HOLD#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            for item in out.items() {
                let Some(number) = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| pk.strip_prefix("HOLD#"))
                else {
                    continue;
                };
                holds.push((number.to_owned(), hold_from(item)));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(holds);
            }
        }
    }
}

fn hold_from(item: &HashMap<String, AttributeValue>) -> Hold {
    Hold {
        code: item.get("code").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0),
        since_ms: number(item, "since_ms").unwrap_or(0),
        until_ms: number(item, "until_ms").unwrap_or(0),
        strikes: number(item, "strikes").and_then(|v| u32::try_from(v).ok()).unwrap_or(1),
        probe_until_ms: number(item, "probe_until"),
    }
}

impl HoldStore for StateTable {
    async fn hold(&self, phone_number_id: &str) -> Result<Option<Hold>, StoreError> {
        Ok(self.get(format!("HOLD#{phone_number_id}"), "HOLD").await?.as_ref().map(hold_from))
    }

    async fn put_hold(&self, phone_number_id: &str, hold: &Hold, previous_strikes: u32) -> Result<bool, StoreError> {
        let mut item = key(format!("HOLD#{phone_number_id}"), "HOLD");
        item.insert("code".into(), n(hold.code));
        item.insert("since_ms".into(), n(hold.since_ms));
        item.insert("until_ms".into(), n(hold.until_ms));
        item.insert("strikes".into(), n(hold.strikes));
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = if previous_strikes == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("strikes = :previous")
                .expression_attribute_values(":previous", n(previous_strikes))
        };
        conditional(request.send().await)
    }

    async fn claim_probe(&self, phone_number_id: &str, now_ms: u64, probe_until_ms: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("HOLD#{phone_number_id}"), "HOLD")))
            .update_expression("SET probe_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND until_ms <= :now AND (attribute_not_exists(probe_until) OR probe_until <= :now)",
            )
            .expression_attribute_values(":until", n(probe_until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        conditional(result)
    }

    async fn clear_hold(&self, phone_number_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("HOLD#{phone_number_id}"), "HOLD")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}

impl MediaIdCache for StateTable {
    async fn media_id(&self, phone_number_id: &str, digest: &str, now_s: u64) -> Result<Option<String>, StoreError> {
        let item = self.get(format!("MEDIAID#{phone_number_id}#{digest}"), "MEDIAID").await?;
        Ok(item
            .filter(|i| number(i, "expires_at").is_some_and(|e| e > now_s))
            .and_then(|i| i.get("media_id").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn claim_upload(
        &self,
        phone_number_id: &str,
        digest: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("MEDIAID#{phone_number_id}#{digest}"), "MEDIAID")))
            .update_expression("SET upload_until = :until, expires_at = if_not_exists(expires_at, :day)")
            .condition_expression(
                "(attribute_not_exists(upload_until) OR upload_until < :now) AND (attribute_not_exists(media_id) OR expires_at < :now_s)",
            )
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .expression_attribute_values(":day", n(now_ms / 1000 + 86_400))
            .send()
            .await;
        conditional(result)
    }

    async fn release_upload(&self, phone_number_id: &str, digest: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("MEDIAID#{phone_number_id}#{digest}"), "MEDIAID")))
            .update_expression("REMOVE upload_until")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn put_media_id(
        &self,
        phone_number_id: &str,
        digest: &str,
        media_id: &str,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("MEDIAID#{phone_number_id}#{digest}"), "MEDIAID")))
            .update_expression("SET media_id = :id, expires_at = :e REMOVE upload_until")
            .expression_attribute_values(":id", s(media_id))
            .expression_attribute_values(":e", n(expires_at_s))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}

/// What `wa erase` found (and, unless a dry run, deleted), by kind of record.
pub type Erased = std::collections::BTreeMap<&'static str, usize>;

/// The kind of record `item` is when it holds one of `ids` of the business number `phone`, if it
/// does: a person's conversation records (every linked id), pair-rate runs, message statuses sent
/// to them and send records addressed to them.
fn personal(item: &HashMap<String, AttributeValue>, phone: &str, ids: &[String]) -> Option<&'static str> {
    let pk = item.get("pk").and_then(|v| v.as_s().ok())?;
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let is_id = |id: &str| ids.iter().any(|i| i == wa_core::identity::normalize_id(id));
    if let Some(rest) = pk.strip_prefix("CONV#").and_then(|r| r.strip_prefix(phone)).and_then(|r| r.strip_prefix('#')) {
        return is_id(rest).then_some("conversation records");
    }
    if let Some(rest) = pk.strip_prefix("PAIR#").and_then(|r| r.strip_prefix(phone)).and_then(|r| r.strip_prefix('#')) {
        return is_id(rest).then_some("pair-rate records");
    }
    if pk.starts_with("MSG#") {
        return text("recipient").is_some_and(|r| is_id(r)).then_some("message statuses");
    }
    if let Some(rest) = pk.strip_prefix("REACH#") {
        // `<portfolio>#<user>`: portfolio names hold no `#`.
        return rest.split_once('#').is_some_and(|(_, user)| is_id(user)).then_some("messaging-limit records");
    }
    if pk.starts_with("SEND#") {
        let outcome: serde_json::Value = serde_json::from_str(text("outcome")?).ok()?;
        let to = outcome.get("to").and_then(serde_json::Value::as_str)?;
        let same_number = outcome.get("phone_number_id").and_then(serde_json::Value::as_str) == Some(phone);
        return (same_number && is_id(to)).then_some("send records");
    }
    None
}

impl StateTable {
    /// `wa erase`: every item of the table that holds one of a person's `ids` for the business
    /// number (a scan of the whole table: an erasure request is rare, and no index leads from a
    /// person to their message statuses and send records); deleted unless `dry_run`.
    pub async fn erase(&self, phone: &str, ids: &[String], dry_run: bool) -> Result<Erased, StoreError> {
        let mut erased = Erased::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            for item in page.items() {
                let Some(kind) = personal(item, phone, ids) else { continue };
                *erased.entry(kind).or_default() += 1;
                if dry_run {
                    continue;
                }
                let (Some(pk), Some(sk)) = (item.get("pk").cloned(), item.get("sk").cloned()) else { continue };
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", pk)
                    .key("sk", sk)
                    .send()
                    .await
                    .map_err(|e| store_error(&e))?;
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(erased);
            }
        }
    }
}

impl CampaignStore for StateTable {
    async fn record_campaign(
        &self,
        campaign: &str,
        variant: &str,
        queued: u64,
        suppressed: u64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CAMPAIGN#{campaign}"), &format!("VARIANT#{variant}"))))
            .update_expression("SET queued = :q, suppressed = :s")
            .expression_attribute_values(":q", n(queued))
            .expression_attribute_values(":s", n(suppressed))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn campaign_counts(&self, campaign: &str) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let number = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("CAMPAIGN#{campaign}")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            for item in page.items() {
                let variant = item.get("sk").and_then(|v| v.as_s().ok()).and_then(|sk| sk.strip_prefix("VARIANT#"));
                if let Some(variant) = variant {
                    out.push((variant.to_owned(), number(item, "queued"), number(item, "suppressed")));
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// A scan of the whole table (no index leads from a campaign to its send records): a report's
    /// cost, paid once per report, not per send.
    async fn campaign_sends(&self, campaign: &str) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let prefix = format!("SEND#{}{campaign}:", wa_core::campaign::KEY_PREFIX);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            for item in page.items() {
                let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else { continue };
                let outcome = item.get("outcome").and_then(|v| v.as_s().ok()).cloned();
                out.push((pk.trim_start_matches("SEND#").to_owned(), outcome));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
