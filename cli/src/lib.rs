//! The `wa` command's operations, as functions the binary and the tests call.

use std::fmt::Write as _;

use wa_core::conversation::{ConversationFacts, RateCard, month_of, utc_datetime};
use wa_core::ports::ConversationStore;
use wa_infra::dynamo::StateTable;

/// `wa stats`: a business number's month (status counts, billable messages by category and
/// pricing type, their estimated cost) and, with a user, that user's window and consent. Without a
/// rate card the estimate uses [`RateCard::example_inr`] and says so.
pub async fn stats(
    table: &StateTable,
    phone_number_id: &str,
    user_id: Option<&str>,
    month: &str,
    now: i64,
    rate_card: Option<&RateCard>,
) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(out, "Business number {phone_number_id}, {month}");
    let statuses = table.status_counts(phone_number_id, month).await.map_err(|e| e.to_string())?;
    let listed: Vec<String> = ["sent", "delivered", "read", "played", "failed"]
        .iter()
        .map(|s| {
            let n = statuses.iter().find(|(k, _)| k == &format!("status#{s}")).map_or(0, |(_, n)| *n);
            format!("{s} {n}")
        })
        .collect();
    let _ = writeln!(out, "  statuses: {}", listed.join(", "));
    let costs = table.costs(phone_number_id, month).await.map_err(|e| e.to_string())?;
    if costs.is_empty() {
        let _ = writeln!(out, "  billable messages: none");
    } else {
        let listed: Vec<String> = costs.iter().map(|(k, n)| format!("{} {n}", k.replace('#', "/"))).collect();
        let _ = writeln!(out, "  billable messages: {}", listed.join(", "));
    }
    match rate_card {
        Some(card) => {
            let _ = writeln!(out, "  estimated cost: {} {:.2}", card.currency, card.estimate(&costs));
        }
        None => {
            let card = RateCard::example_inr();
            let _ = writeln!(
                out,
                "  estimated cost: {} {:.2} (example India rate card; set --rate-card or RATE_CARD for your market)",
                card.currency,
                card.estimate(&costs)
            );
        }
    }
    if let Some(user) = user_id {
        let facts = table.facts(phone_number_id, user).await.map_err(|e| e.to_string())?;
        let _ = writeln!(out, "User {user}");
        match facts {
            None => {
                let _ = writeln!(out, "  never wrote to this number: service window closed");
            }
            Some(facts) => describe_user(&mut out, &facts, now),
        }
    }
    Ok(out)
}

/// `wa stats --message <wamid>`: a message's status, pricing and the send request behind it.
pub async fn message(table: &StateTable, wamid: &str) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(out, "Message {wamid}");
    let Some(record) = table.message(wamid).await.map_err(|e| e.to_string())? else {
        let _ = writeln!(out, "  unknown: no status received and no send request of ours produced it");
        return Ok(out);
    };
    let at = record.status_at.and_then(|t| i64::try_from(t).ok()).map(utc_datetime);
    match (&record.status, at) {
        (Some(status), Some(at)) => {
            let _ = writeln!(out, "  status: {status} at {at}");
        }
        (Some(status), None) => {
            let _ = writeln!(out, "  status: {status}");
        }
        (None, _) => {
            let _ = writeln!(out, "  status: none received yet");
        }
    }
    if let (Some(category), Some(kind)) = (&record.pricing_category, &record.pricing_type) {
        let _ = writeln!(out, "  pricing: {category}/{kind}");
    }
    if let Some(data) = &record.callback_data {
        let _ = writeln!(out, "  callback data: {data}");
    }
    match &record.idempotency_key {
        Some(key) => {
            let _ = writeln!(out, "  send request: {key}");
        }
        None => {
            let _ = writeln!(out, "  send request: not sent through this pipeline (or not linked yet)");
        }
    }
    Ok(out)
}

fn describe_user(out: &mut String, facts: &ConversationFacts, now: i64) {
    let last = facts.last_inbound_at.map_or_else(|| "never".to_owned(), utc_datetime);
    if facts.service_window_open(now) {
        let until = facts.last_inbound_at.map_or(now, |t| t + wa_core::conversation::SERVICE_WINDOW_SECONDS);
        let _ = writeln!(out, "  service window: open until {} (last message {last})", utc_datetime(until));
    } else {
        let _ = writeln!(out, "  service window: closed (last message {last})");
    }
    match facts.free_entry_point_until.filter(|until| *until > now) {
        Some(until) => {
            let _ = writeln!(out, "  free entry point: open until {}", utc_datetime(until));
        }
        None => {
            let _ = writeln!(out, "  free entry point: none");
        }
    }
    let consent = if facts.marketing_opt_out { "opted out" } else { "not opted out" };
    let _ = writeln!(out, "  marketing: {consent}");
}

/// The current month (UTC).
#[must_use]
pub fn this_month(now: i64) -> String {
    month_of(now)
}
