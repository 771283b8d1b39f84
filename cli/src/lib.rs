//! The `wa` command's operations, as functions the binary and the tests call.

use std::fmt::Write as _;

use wa_core::conversation::{ConversationFacts, month_of, utc_datetime};
use wa_core::ports::ConversationStore;
use wa_infra::dynamo::StateTable;

/// `wa stats`: a business number's month (status counts, billable messages by category and
/// pricing type) and, with a user, that user's window and consent.
pub async fn stats(
    table: &StateTable,
    phone_number_id: &str,
    user_id: Option<&str>,
    month: &str,
    now: i64,
    rate_card: Option<&wa_core::conversation::RateCard>,
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
    if let Some(card) = rate_card {
        let _ = writeln!(out, "  estimated cost: {} {:.2}", card.currency, card.estimate(&costs));
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
