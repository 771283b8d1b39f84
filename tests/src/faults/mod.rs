//! Fault-injection runs: thousands of events through the real function binaries, run as processes
//! under a Lambda Runtime API emulator ([`lambda`]), against moto behind a fault proxy ([`proxy`])
//! and the Cloud API simulator, with crashes done by killing the processes. Each run counts what
//! went in and what came out and checks the guarantees the README makes:
//!
//! - [`ingest`]: signed webhook deliveries → webhook-ingest → inbound queue → event-processor →
//!   events queue; nothing acknowledged is lost, nothing is forwarded twice, statuses never go
//!   back, the cost ledger is exact.
//! - [`send`]: send requests → sender → Graph (the simulator) → outcomes; exactly one outcome per
//!   request, nothing lost, duplicate messages only from ambiguous faults, none for
//!   `at_most_once`.
//! - [`rotation`]: the access token rotated with a fault at each of the four steps while the
//!   sender takes traffic; no authentication failure, `AWSCURRENT` always valid.
//!
//! `scripts/faults.sh` runs them at full size (`wa-faults`); `tests/tests/faults.rs` runs small
//! versions in the suite. Deterministic from a seed: the plan (which items, which faults, which
//! kills) is; the timing of concurrent processes is not.

pub mod cost;
pub mod ingest;
pub mod lambda;
pub mod proxy;
pub mod rotation;
pub mod send;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A small seeded generator (SplitMix64): the runs' plans come from it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Shuffles `items` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

/// What one function role used in a run: its invocations, the AWS calls its processes made
/// (counted at the proxies, by operation), their billed durations and the bytes they logged.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// `webhook-ingest`, `event-processor`, `sender`.
    pub role: String,
    /// Answered invocations.
    pub invocations: u64,
    /// AWS calls by operation.
    pub calls: BTreeMap<String, u64>,
    /// Each answered invocation's duration, µs.
    pub durations_us: Vec<u64>,
    /// Bytes written to the logs (JSON logs and EMF metric lines, what CloudWatch Logs ingests).
    pub log_bytes: u64,
    /// DynamoDB request units and SQS batch entries ([`proxy::units`]).
    pub units: BTreeMap<String, f64>,
}

impl Usage {
    /// The usage of `functions` behind `proxies`, logging into `logs` files named `<prefix>*`.
    #[must_use]
    pub fn of(role: &str, functions: &[lambda::Function], proxies: &[proxy::Proxy]) -> Self {
        let mut usage = Self { role: role.to_owned(), ..Self::default() };
        for function in functions {
            usage.durations_us.extend(function.durations_us());
            usage.log_bytes += std::fs::metadata(function.log()).map_or(0, |m| m.len());
        }
        usage.invocations = usage.durations_us.len() as u64;
        for proxy in proxies {
            for (op, n) in proxy.calls() {
                *usage.calls.entry(op).or_default() += n;
            }
            for (unit, n) in proxy.units() {
                *usage.units.entry(unit).or_default() += n;
            }
        }
        usage
    }

    /// As JSON: invocations, calls, billed milliseconds (each duration rounded up, Lambda's
    /// rule) in total and at the median, log bytes.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        let mut sorted = self.durations_us.clone();
        sorted.sort_unstable();
        let billed_ms: u64 = sorted.iter().map(|us| us.div_ceil(1000)).sum();
        serde_json::json!({
            "role": self.role, "invocations": self.invocations, "calls": self.calls,
            "billed_ms_total": billed_ms, "duration_ms_p50": sorted.get(sorted.len() / 2).map_or(0.0, |us| *us as f64 / 1000.0),
            "log_bytes": self.log_bytes, "units": self.units,
        })
    }
}

/// One run's figures, printed as a table row and checked against the goals.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The path (`ingest → processor`, `sender`, `rotation`).
    pub path: String,
    /// What went in (webhook items, send requests, rotations).
    pub items: u64,
    /// Faults injected, by kind.
    pub injected: BTreeMap<String, u64>,
    /// Items acknowledged (answered 200 to Meta; requests put on the queue).
    pub acknowledged: u64,
    /// Items that came out (events forwarded, outcomes published), counted once each.
    pub delivered: u64,
    /// Acknowledged but never out.
    pub lost: u64,
    /// Out more than once (extra copies).
    pub duplicated: u64,
    /// Wall time.
    pub seconds: f64,
    /// Other figures (name, value).
    pub figures: Vec<(String, String)>,
    /// The goals, each with whether it held.
    pub checks: Vec<(String, bool)>,
    /// What each function role used (the cost run reads it).
    pub usage: Vec<Usage>,
}

impl Report {
    /// Whether every goal held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// Adds a goal.
    pub fn check(&mut self, goal: impl Into<String>, held: bool) {
        self.checks.push((goal.into(), held));
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.to_owned(), value.to_string()));
    }

    /// The report as Markdown: the table row's figures, the faults, the goals.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n| items | injected faults | acknowledged | delivered | lost | duplicated | seconds |\n|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {:.1} |\n\n",
            self.path,
            self.items,
            self.injected.values().sum::<u64>(),
            self.acknowledged,
            self.delivered,
            self.lost,
            self.duplicated,
            self.seconds
        );
        out.push_str("Faults injected:\n\n");
        for (kind, count) in &self.injected {
            out.push_str(&format!("- {kind}: {count}\n"));
        }
        if !self.figures.is_empty() {
            out.push_str("\nFigures:\n\n");
            for (name, value) in &self.figures {
                out.push_str(&format!("- {name}: {value}\n"));
            }
        }
        out.push_str("\nGoals:\n\n");
        for (goal, held) in &self.checks {
            out.push_str(&format!("- {} {goal}\n", if *held { "PASS" } else { "FAIL" }));
        }
        out
    }
}

/// A function binary built for this machine (`target/debug/<name>`, or `WA_FAULTS_BIN_DIR`).
///
/// # Panics
/// When it is missing: the runs need real processes (`cargo build -p <name>` builds it;
/// `scripts/test.sh` and `scripts/faults.sh` do).
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("WA_FAULTS_BIN_DIR")
        .map_or_else(|| crate::repo_root().join("target").join("debug"), PathBuf::from);
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the functions with `cargo build -p webhook-ingest -p webhook-verify -p event-processor -p sender -p secret-rotation` (scripts/test.sh and scripts/faults.sh do)",
        path.display()
    );
    path
}

/// Where a run's process logs go.
#[must_use]
pub fn log_dir(run: &str) -> PathBuf {
    let dir = crate::repo_root().join("target").join("fault-runs").join(run);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the run's log directory");
    dir
}

/// The sum of metric `name` in the EMF lines of the logs in `dir`.
#[must_use]
pub fn metric_total(dir: &std::path::Path, name: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(name)) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                total += value[name].as_f64().unwrap_or(0.0);
            }
        }
    }
    total
}

/// One receive for the event source mapping: `None` when the queue is empty or SQS failed (moto
/// under load times out now and then; the mapping polls again).
pub(crate) async fn poll(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<crate::esm::Batch> {
    match crate::esm::try_receive(sqs, url).await {
        Ok(batch) => batch,
        Err(_) => {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            None
        }
    }
}

/// Deletes what the function finished, as the mapping does; retried when SQS fails (what is not
/// deleted comes back after its visibility timeout, as with Lambda).
pub(crate) async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: &crate::esm::Batch,
    response: &aws_lambda_events::sqs::SqsBatchResponse,
) {
    for _ in 0..3 {
        if crate::esm::try_settle(sqs, url, batch, response).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Messages on a queue, visible or in flight (`u64::MAX` when SQS does not answer).
pub(crate) async fn backlog(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let Ok(out) = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
    else {
        return u64::MAX;
    };
    let attributes = out.attributes.unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| attributes.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

/// The needles (secret values, phone-number prefixes) found in the logs of `dir`: the functions
/// never log secrets, message text or phone numbers, killed or not.
#[must_use]
pub fn leaks(dir: &std::path::Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for needle in needles {
            if text.contains(needle) {
                found.push(format!("{needle} in {}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_generator_is_deterministic_and_spread() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        assert_eq!(xs, (0..100).map(|_| b.below(10)).collect::<Vec<_>>());
        assert!((0..10).all(|d| xs.contains(&d)));
        let hits = (0..10_000).filter(|_| a.chance(0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
