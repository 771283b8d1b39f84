//! The `wa` command's operations, as functions the binary and the tests call.

pub mod campaign;
pub mod demo;
pub mod dev;
pub mod dlq;
pub mod doctor;
pub mod erase;
pub mod hold;
pub mod outbox;
pub mod produce;
pub mod replay;
pub mod serve;
pub mod templates;

pub use dlq::{dlq_list, dlq_redrive};
pub use produce::{MediaTarget, SendArgs, Staged, media_file, send, send_request, stage};
pub use replay::replay;

use std::fmt::Write as _;

use wa_core::conversation::{ConversationFacts, RateCard, month_of, utc_datetime};
use wa_infra::dynamo::StateTable;

/// Where `wa stats` reads the messaging limit: the number's portfolio (`PORTFOLIOS`) and the tier
/// configured for the senders (`MESSAGING_LIMIT`).
#[derive(Debug, Clone, Default)]
pub struct LimitView {
    /// Which portfolio each number counts in.
    pub portfolios: wa_core::limit::Portfolios,
    /// The tier applied until Meta announces one.
    pub configured: Option<wa_core::limit::Tier>,
}

/// The number's send rate and its portfolio's messaging limit: unique users reached in the
/// rolling 24 hours against the tier, and when room opens for a new user if the window is full.
pub async fn limit_lines(
    store: &impl wa_core::ports::LimitStore,
    phone_number_id: &str,
    view: &LimitView,
    now_s: u64,
) -> Result<String, String> {
    use wa_core::limit::{Gate, Tier, gate};
    let portfolio = view.portfolios.of(phone_number_id);
    let mut facts = store.limit_facts(&[phone_number_id], &[portfolio]).await.map_err(|e| e.to_string())?;
    let window = facts.windows.remove(portfolio).unwrap_or_default();
    let mut out = String::new();
    if let Some(rate) = facts.rates.get(phone_number_id) {
        let _ = writeln!(out, "  send rate: {rate} messages/s (THROUGHPUT_UPGRADE)");
    }
    let tier = window.tier_or(view.configured);
    let source = if window.tier.is_some() { "announced by Meta" } else { "configured" };
    let (reached, _) = window.usage(view.configured, now_s);
    match tier {
        None => {
            let _ = writeln!(
                out,
                "  messaging limit (portfolio {portfolio}): not known yet, none applied; {reached} user(s) counted in 24 h"
            );
        }
        Some(Tier::Unlimited) => {
            let _ = writeln!(out, "  messaging limit (portfolio {portfolio}): unlimited ({source})");
        }
        Some(Tier::Limited(limit)) => {
            let _ = writeln!(
                out,
                "  messaging limit (portfolio {portfolio}): {reached} of {limit} unique users in 24 h ({:.0} %, {source})",
                reached as f64 * 100.0 / limit as f64
            );
            if let Gate::Full { until_s } = gate(tier, &window.buckets, now_s) {
                let _ = writeln!(
                    out,
                    "    full: templates to new users wait until {} UTC",
                    wa_core::conversation::utc_datetime(i64::try_from(until_s).unwrap_or(i64::MAX))
                );
            }
        }
    }
    Ok(out)
}

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
    limits: &LimitView,
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
    out.push_str(&limit_lines(table, phone_number_id, limits, u64::try_from(now).unwrap_or(0)).await?);
    if let Some(user) = user_id {
        let person = wa_core::identity::resolve(table, phone_number_id, user).await.map_err(|e| e.to_string())?;
        let _ = writeln!(out, "User {user}");
        if person.known {
            let kinds: Vec<&str> = person
                .ids
                .iter()
                .map(|id| match wa_core::identity::id_kind(id) {
                    Some(wa_core::identity::IdKind::Phone) => "phone number",
                    Some(wa_core::identity::IdKind::Bsuid) => "BSUID",
                    Some(wa_core::identity::IdKind::ParentBsuid) => "parent BSUID",
                    None => "other id",
                })
                .collect();
            let _ = writeln!(out, "  known by {} id(s): {}", person.ids.len(), kinds.join(", "));
            if let Some(username) = &person.username {
                let _ = writeln!(out, "  username: {username}");
            }
            describe_user(&mut out, &person.facts, now);
        } else {
            let _ = writeln!(out, "  never wrote to this number: service window closed");
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

/// The runtime `wa`'s commands run on (`wa dev` included): two worker threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

/// `wa dev`: starts the local stack, prints where everything is, follows the events queue, and
/// runs until Ctrl-C — or, with `demo`, plays the demo and exits (success when every step held).
pub async fn run_dev(options: dev::DevOptions, demo: bool) -> std::process::ExitCode {
    use std::io::Write as _;
    let stack = match dev::DevStack::start(&options).await {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("wa dev: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say(&format!(
        "wa dev: the WhatsApp pipeline on loopback (queues and state in {})",
        options.data_dir.join(dev::DB_FILE).display()
    ));
    say(&format!("  webhook    {}  (GET verify, POST events)", stack.webhook_url));
    match &stack.simulator {
        Some(simulator) => {
            let base = simulator.base_url();
            say(&format!("  verify     token {}, app secret {}", dev::DEV_VERIFY_TOKEN, dev::DEV_APP_SECRET));
            say(&format!("  Graph API  {base}  (the Cloud API simulator; it posts signed statuses to the webhook)"));
            say(&format!(
                "  send       wa send --to 16505551234 --text \"hello\"   (business number {})",
                dev::DEV_PHONE_NUMBER_ID
            ));
            say(&format!(
                "  a user     curl -X POST {base}/_sim/inbound -H 'content-type: application/json' -d '{{\"phone_number_id\":\"{}\",\"from\":\"16505551234\",\"text\":\"hi\"}}'",
                dev::DEV_PHONE_NUMBER_ID
            ));
        }
        None => say("  Graph API  the real one (WA_ACCESS_TOKEN is set)"),
    }
    say("  replay     wa replay <webhook URL>   (Meta's 16 example webhooks, signed)");
    let follower = tokio::spawn(dev::follow(stack.queues.events.clone(), stack.stopping(), move |line| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "    {line}");
        let _ = out.flush();
    }));
    let code = if demo {
        say("demo:");
        match demo::run(&stack, &say).await {
            Ok(()) => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                say("demo finished: every step went as expected");
                std::process::ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("wa dev --demo: {error}");
                std::process::ExitCode::FAILURE
            }
        }
    } else {
        say("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        std::process::ExitCode::SUCCESS
    };
    stack.stop().await;
    let _ = follower.await;
    code
}
