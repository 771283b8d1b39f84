//! `wa campaign send` and `wa campaign report`: bulk template sends with variants on the outbound
//! queue (the local stack's, or SQS), and each variant's funnel from the state table (the local
//! stack's, or DynamoDB) as a table, JSON or an SVG picture.
//!
//! Re-running a send after a crash or Ctrl-C sends nobody twice: every request's idempotency key
//! derives from the campaign and the recipient ([`wa_core::campaign::key`]), so the outbound FIFO
//! queue drops repeats within five minutes and the sender's claim (30 days) drops the rest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::Value;
use wa_core::campaign::{self, Funnel, Plan, SendFacts, Variant};
use wa_core::identity;
use wa_core::outcome::SendOutcome;
use wa_core::ports::{CampaignStore, ConversationStore};
use wa_core::send::{Category, SendRequest};
use wa_infra_local::LocalQueue;

/// What `wa campaign send` was given.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The campaign id.
    pub campaign: String,
    /// The audience CSV.
    pub audience: PathBuf,
    /// The variants.
    pub variants: Vec<Variant>,
    /// The business numbers (one or more; recipients are spread over them).
    pub phone_number_ids: Vec<String>,
    /// The language of rows without one.
    pub language: String,
    /// The declared category (marketing: opted-out recipients are suppressed).
    pub category: Option<Category>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a send did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Rows in the audience.
    pub total: usize,
    /// Requests put on the queue.
    pub queued: usize,
    /// Requests the queue already held (a re-run within five minutes).
    pub repeated: usize,
    /// Opted-out recipients of a marketing campaign, not queued.
    pub suppressed: usize,
    /// Queued per variant.
    pub by_variant: BTreeMap<String, usize>,
    /// Seconds it took.
    pub seconds: f64,
}

impl Summary {
    /// Requests per second queued.
    #[must_use]
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 { (self.queued + self.repeated) as f64 / self.seconds } else { 0.0 }
    }
}

/// Where requests go.
pub enum Outbound {
    /// The local stack's outbound queue.
    Local(LocalQueue),
    /// An SQS FIFO queue.
    Sqs {
        /// The client.
        client: aws_sdk_sqs::Client,
        /// The queue URL.
        url: String,
    },
}

/// Requests per local transaction.
const LOCAL_CHUNK: usize = 500;
/// `SendMessageBatch` calls in flight at once.
const SQS_CONCURRENCY: usize = 32;

impl Outbound {
    /// Puts `requests` on the queue; returns how many were new (not repeats).
    async fn put(&self, requests: &[Value]) -> Result<usize, String> {
        match self {
            Self::Local(queue) => {
                let items: Vec<(String, Option<String>, Option<String>)> = requests
                    .iter()
                    .map(|r| {
                        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                        (
                            wa_core::queue_text::sqs_safe(&r.to_string()).into_owned(),
                            Some(format!("{}#{}", text("phone_number_id"), text("to"))),
                            Some(text("idempotency_key")),
                        )
                    })
                    .collect();
                let queued = queue.send_batch(&items).map_err(|e| e.to_string())?;
                Ok(queued.iter().filter(|q| **q).count())
            }
            Self::Sqs { client, url } => {
                let batches: Vec<&[Value]> = requests.chunks(10).collect();
                let results: Vec<Result<usize, String>> = stream::iter(batches)
                    .map(|batch| crate::produce::send_sqs_batch(client, url, batch))
                    .buffer_unordered(SQS_CONCURRENCY)
                    .collect()
                    .await;
                results.into_iter().sum()
            }
        }
    }
}

/// The requests of a campaign, checked, with each one's variant; an error names the first bad
/// row (its line in the file) or argument.
pub fn plan_requests(options: &SendOptions, text: &str) -> Result<Vec<(SendRequest, String)>, String> {
    campaign::check_id(&options.campaign).map_err(|e| e.to_string())?;
    campaign::check_variants(&options.variants).map_err(|e| e.to_string())?;
    let rows = campaign::parse_audience(text).map_err(|e| e.to_string())?;
    let plan = Plan {
        campaign: &options.campaign,
        phone_number_ids: &options.phone_number_ids,
        variants: &options.variants,
        default_language: &options.language,
        category: options.category,
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let (request, variant) =
            campaign::request(&plan, row, index).map_err(|e| format!("audience row {}: {e}", index + 1))?;
        // A recipient twice in the file is one request (the same key): kept once.
        if seen.insert(request.idempotency_key.clone()) {
            out.push((request, variant.name.clone()));
        }
    }
    Ok(out)
}

/// Sends a campaign: reads the audience, suppresses opted-out recipients of a marketing campaign
/// (by every id linked to them), queues the rest in batches, and records each variant's counters
/// in the state.
pub async fn send<S: ConversationStore + CampaignStore>(
    options: &SendOptions,
    state: &S,
    outbound: &Outbound,
) -> Result<Summary, String> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&options.audience)
        .map_err(|e| format!("cannot read {}: {e}", options.audience.display()))?;
    let planned = plan_requests(options, &text)?;
    let mut summary = Summary { total: planned.len(), ..Summary::default() };
    let bar = progress_bar(options.progress, planned.len());
    let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
    let mut queued: BTreeMap<String, u64> = BTreeMap::new();
    let chunk = match outbound {
        Outbound::Local(_) => LOCAL_CHUNK,
        Outbound::Sqs { .. } => 10 * SQS_CONCURRENCY,
    };
    for part in planned.chunks(chunk) {
        let mut requests = Vec::with_capacity(part.len());
        for (request, variant) in part {
            if options.category == Some(Category::Marketing) && opted_out(state, request).await? {
                *suppressed.entry(variant.clone()).or_default() += 1;
                summary.suppressed += 1;
                continue;
            }
            *queued.entry(variant.clone()).or_default() += 1;
            requests.push(serde_json::to_value(request).map_err(|e| e.to_string())?);
        }
        let new = outbound.put(&requests).await?;
        summary.queued += new;
        summary.repeated += requests.len() - new;
        if let Some(bar) = &bar {
            bar.inc(part.len() as u64);
        }
        // Between chunks, let Ctrl-C (and the progress bar) in.
        tokio::task::yield_now().await;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for variant in &options.variants {
        let q = queued.get(&variant.name).copied().unwrap_or(0);
        let s = suppressed.get(&variant.name).copied().unwrap_or(0);
        state.record_campaign(&options.campaign, &variant.name, q, s).await.map_err(|e| e.to_string())?;
        summary.by_variant.insert(variant.name.clone(), usize::try_from(q).unwrap_or(usize::MAX));
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn progress_bar(show: bool, total: usize) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} queued, {per_sec}, {eta} left") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

async fn opted_out<S: ConversationStore>(state: &S, request: &SendRequest) -> Result<bool, String> {
    let Some(to) = request.to.as_deref() else { return Ok(false) };
    let person = identity::resolve(state, &request.phone_number_id, to).await.map_err(|e| e.to_string())?;
    Ok(person.facts.marketing_opt_out)
}

/// A message's status record: (furthest status, pricing category).
pub type MessageLookup<'a> =
    Box<dyn Fn(String) -> futures_util::future::BoxFuture<'a, Result<(Option<String>, Option<String>), String>> + 'a>;

/// The lookup of the local stack's message records (`wa campaign report` without `--table`).
#[must_use]
pub fn local_lookup(state: &wa_infra_local::LocalState) -> MessageLookup<'static> {
    let state = state.clone();
    Box::new(move |wamid: String| {
        let record = state.message(&wamid);
        Box::pin(async move {
            let record = record.map_err(|e| e.to_string())?;
            Ok(record.map_or((None, None), |r| (r.status, r.pricing_category)))
        })
    })
}

/// Each variant's funnel, from the state: the counters `wa campaign send` recorded, every send
/// record of the campaign, each accepted message's status (`message`), and each person's last
/// inbound message.
pub async fn report<S: ConversationStore + CampaignStore>(
    state: &S,
    message: &MessageLookup<'_>,
    campaign: &str,
    reply_window: Duration,
) -> Result<Vec<Funnel>, String> {
    campaign::check_id(campaign).map_err(|e| e.to_string())?;
    let counts = state.campaign_counts(campaign).await.map_err(|e| e.to_string())?;
    let sends = state.campaign_sends(campaign).await.map_err(|e| e.to_string())?;
    if counts.is_empty() && sends.is_empty() {
        return Err(format!("no campaign {campaign:?} in this state (nothing queued, nothing sent)"));
    }
    let mut facts = Vec::with_capacity(sends.len());
    for (_, outcome) in sends {
        let outcome: Option<SendOutcome> = outcome.as_deref().and_then(|o| serde_json::from_str(o).ok());
        let Some(outcome) = outcome else {
            // Claimed, not decided yet: counted as in flight.
            facts.push(SendFacts { variant: "?".into(), ..SendFacts::default() });
            continue;
        };
        let variant = campaign::variant_of(outcome.callback_data.as_deref()).unwrap_or_else(|| "?".into());
        let (status, pricing_category) = match &outcome.wamid {
            Some(wamid) => message(wamid.clone()).await?,
            None => (None, None),
        };
        let last_inbound_at = match (&outcome.phone_number_id, &outcome.to) {
            (Some(number), Some(to)) => {
                identity::resolve(state, number, to).await.map_err(|e| e.to_string())?.facts.last_inbound_at
            }
            _ => None,
        };
        facts.push(SendFacts { variant, outcome: Some(outcome), status, pricing_category, last_inbound_at });
    }
    let window = i64::try_from(reply_window.as_secs()).unwrap_or(i64::MAX);
    Ok(campaign::report(&counts, &facts, window).into_iter().filter(|f| f.variant != "?" || f.decided > 0).collect())
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// The funnels as a table for a person.
#[must_use]
pub fn table(campaign: &str, funnels: &[Funnel]) -> String {
    let mut out = format!("campaign {campaign}\n");
    out.push_str(&format!(
        "{:<10} {:>8} {:>10} {:>8} {:>8} {:>16} {:>14} {:>14}  failed by class; billable by category\n",
        "variant", "queued", "suppressed", "decided", "sent", "delivered", "read", "replied"
    ));
    for f in funnels {
        let failed: Vec<String> = f.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let billable: Vec<String> = f.billable.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "{:<10} {:>8} {:>10} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>6} {:>7}  {}; {}\n",
            f.variant,
            f.queued,
            f.suppressed,
            f.decided,
            f.sent,
            f.delivered,
            percent(f.delivered, f.sent),
            f.read,
            percent(f.read, f.sent),
            f.replied,
            percent(f.replied, f.sent),
            if failed.is_empty() { "none".into() } else { failed.join(", ") },
            if billable.is_empty() { "none".into() } else { billable.join(", ") },
        ));
    }
    out
}

/// The funnels as a picture: one funnel per variant (queued → sent → delivered → read → replied),
/// bars scaled to the largest `queued`, drawn with plotters' SVG backend.
pub fn svg(campaign: &str, funnels: &[Funnel]) -> Result<String, String> {
    use plotters::prelude::*;
    let stages = ["queued", "sent", "delivered", "read", "replied"];
    let width = 360 * u32::try_from(funnels.len().max(1)).unwrap_or(1) + 40;
    let height = 300;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = ("sans-serif", 18).into_font();
        root.draw(&Text::new(format!("campaign {campaign}"), (20, 12), title)).map_err(|e| e.to_string())?;
        let top = funnels.iter().map(|f| f.queued.max(f.sent)).max().unwrap_or(0).max(1);
        let label = ("sans-serif", 13).into_font();
        for (i, f) in funnels.iter().enumerate() {
            let x0 = 20 + 360 * i32::try_from(i).unwrap_or(0);
            root.draw(&Text::new(format!("variant {}", f.variant), (x0, 40), label.clone()))
                .map_err(|e| e.to_string())?;
            let values = [f.queued, f.sent, f.delivered, f.read, f.replied];
            for (row, (stage, value)) in stages.iter().zip(values).enumerate() {
                let y = 64 + 44 * i32::try_from(row).unwrap_or(0);
                let full = 320.0;
                let w = (full * value as f64 / top as f64).round() as i32;
                let left = x0 + (full as i32 - w) / 2;
                let color = Palette99::pick(row).mix(0.85);
                root.draw(&Rectangle::new([(left, y), (left + w.max(1), y + 30)], color.filled()))
                    .map_err(|e| e.to_string())?;
                let text = format!("{stage} {value} ({})", percent(value, values[0].max(1)));
                root.draw(&Text::new(text, (x0 + 4, y + 9), label.clone())).map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_has_a_funnel_per_variant() {
        let funnels = vec![
            Funnel {
                variant: "a".into(),
                queued: 100,
                sent: 90,
                delivered: 80,
                read: 40,
                replied: 5,
                ..Funnel::default()
            },
            Funnel {
                variant: "b".into(),
                queued: 100,
                sent: 95,
                delivered: 90,
                read: 60,
                replied: 9,
                ..Funnel::default()
            },
        ];
        let svg = svg("spring", &funnels).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("variant a") && svg.contains("variant b"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 1 + 2 * 5, "the background and five bars per variant");
        let table = table("spring", &funnels);
        assert!(table.contains("88.9%") && table.contains("94.7%"), "{table}");
    }
}
