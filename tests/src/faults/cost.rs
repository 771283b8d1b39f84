//! What a million messages cost in AWS (#26): the fault runs with no faults — a user's messages,
//! statuses, and template sends, each through the real function binaries against moto — count
//! every AWS call at the proxies (with DynamoDB's request units and SQS batch entries) and time
//! every invocation as Lambda bills it; this module prices them at AWS's public on-demand prices
//! for arm64 in us-east-1 and sets them beside a managed service's fee per message.
//!
//! Two deployments are priced ([`Deployment`]): the template's defaults (`WebhookEndpoint:
//! HttpApi`, `EventsDelivery: Bus`) and the lean one (`FunctionUrl`, `Queue`). What the harness
//! does differently from the template, and how it is priced instead: the functions publish to the
//! events queue (`EVENTS_QUEUE_URL`), as the lean deployment does; for the default one each
//! published entry is priced as one `PutEvents` entry and the bus's delivery to the events queue
//! (an SQS request). Lambda's event source mapping is the harness here, priced as one
//! `ReceiveMessage` and one `DeleteMessageBatch` per batch; API Gateway is not in the loop, priced
//! (default deployment) as one request per webhook with its access-log line.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Report, Usage, ingest, send};

/// AWS Lambda, arm64, per request (aws.amazon.com/lambda/pricing, read 2026-12-07).
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// AWS Lambda, arm64, per GB-second, first 7.5 billion GB-s a month (same page).
pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
/// API Gateway HTTP API, per request, first 300 million a month (aws.amazon.com/api-gateway/pricing).
pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
/// SQS standard queue, per request, first 100 billion a month (aws.amazon.com/sqs/pricing).
pub const SQS_STANDARD: f64 = 0.40 / 1e6;
/// SQS FIFO queue, per request (same page).
pub const SQS_FIFO: f64 = 0.50 / 1e6;
/// DynamoDB on-demand, per write request unit (aws.amazon.com/dynamodb/pricing/on-demand, since
/// the 2024-11 price cut).
pub const DDB_WRITE_UNIT: f64 = 0.625 / 1e6;
/// DynamoDB on-demand, per read request unit (same page).
pub const DDB_READ_UNIT: f64 = 0.125 / 1e6;
/// EventBridge, custom events put on a bus, per event (aws.amazon.com/eventbridge/pricing).
pub const BUS_EVENT: f64 = 1.00 / 1e6;
/// CloudWatch Logs, standard log ingestion, per GB (aws.amazon.com/cloudwatch/pricing).
pub const LOG_GB: f64 = 0.50;
/// Secrets Manager, per API call (aws.amazon.com/secrets-manager/pricing: $0.05 per 10,000).
pub const SECRET_CALL: f64 = 0.05 / 10_000.0;
/// S3 standard, PUT and other writes, per request (aws.amazon.com/s3/pricing: $0.005 per 1,000).
pub const S3_WRITE: f64 = 0.005 / 1000.0;
/// S3 standard, GET, per request ($0.0004 per 1,000).
pub const S3_READ: f64 = 0.0004 / 1000.0;
/// Twilio's fee per WhatsApp message, inbound or outbound, on top of Meta's
/// (twilio.com/en-us/whatsapp/pricing, read 2026-12-07).
pub const MANAGED_FEE: f64 = 0.005;
/// Lambda's own log lines per invocation in JSON format (`platform.start`, `platform.report`):
/// about 350 bytes, counted on top of the functions' logs.
pub const PLATFORM_LOG_BYTES: f64 = 350.0;
/// The API's access-log line per request (template.yaml's `AccessLogSettings` format, filled).
pub const ACCESS_LOG_BYTES: f64 = 300.0;
/// Statuses Meta sends for a delivered and read message (sent, delivered, read).
pub const STATUSES_PER_SEND: f64 = 3.0;
/// The functions' memory in template.yaml (MB).
pub const MEMORY_MB: f64 = 256.0;

/// Which of template.yaml's choices are priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// The defaults: Meta calls the HTTP API, events go to the bus.
    Default,
    /// `WebhookEndpoint: FunctionUrl` and `EventsDelivery: Queue`: Meta calls ingest's function URL,
    /// events go to the events queue ten to a request.
    Lean,
}

impl Deployment {
    /// As the cost table names it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default (HttpApi, Bus)",
            Self::Lean => "lean (FunctionUrl, Queue)",
        }
    }
}

/// One priced line: what, how many per item, dollars per million items.
#[derive(Debug, Clone)]
pub struct Line {
    /// The AWS item.
    pub what: String,
    /// Units per item (requests, units, ms, bytes).
    pub per_item: f64,
    /// The unit.
    pub unit: &'static str,
    /// Dollars per million items.
    pub per_million: f64,
}

/// The priced lines of one path.
#[derive(Debug, Clone, Default)]
pub struct PathCost {
    /// What one item is.
    pub name: String,
    /// Items measured.
    pub items: u64,
    /// The lines.
    pub lines: Vec<Line>,
}

impl PathCost {
    fn add(&mut self, what: impl Into<String>, total: f64, unit: &'static str, price: f64) {
        let items = self.items.max(1) as f64;
        let per_item = total / items;
        self.lines.push(Line { what: what.into(), per_item, unit, per_million: per_item * price * 1e6 });
    }

    /// Dollars per million items.
    #[must_use]
    pub fn per_million(&self) -> f64 {
        self.lines.iter().map(|l| l.per_million).sum()
    }

    /// A function's invocations, billed duration and logs.
    fn lambda(&mut self, usage: &Usage) {
        let billed_ms: u64 = usage.durations_us.iter().map(|us| us.div_ceil(1000)).sum();
        let name = &usage.role;
        self.add(format!("{name}: Lambda requests"), usage.invocations as f64, "invocations", LAMBDA_REQUEST);
        self.add(
            format!("{name}: Lambda duration at {MEMORY_MB} MB"),
            billed_ms as f64,
            "billed ms",
            MEMORY_MB / 1024.0 * LAMBDA_GB_S / 1000.0,
        );
        let bytes = usage.log_bytes as f64 + usage.invocations as f64 * PLATFORM_LOG_BYTES;
        self.add(format!("{name}: CloudWatch Logs"), bytes, "bytes", LOG_GB / 1e9);
    }

    /// DynamoDB request units, Secrets Manager and S3 calls of a function.
    fn state(&mut self, usage: &Usage) {
        let name = &usage.role;
        let unit = |u: &str| usage.units.get(u).copied().unwrap_or(0.0);
        let calls =
            |prefix: &str| usage.calls.iter().filter(|(op, _)| op.starts_with(prefix)).map(|(_, n)| *n).sum::<u64>();
        let ddb = calls("DynamoDB");
        if ddb > 0 {
            self.add(format!("{name}: DynamoDB write units"), unit("DynamoDB write units"), "WRU", DDB_WRITE_UNIT);
            self.add(format!("{name}: DynamoDB read units"), unit("DynamoDB read units"), "RRU", DDB_READ_UNIT);
        }
        let secrets = calls("secretsmanager");
        if secrets > 0 {
            self.add(format!("{name}: Secrets Manager (cached)"), secrets as f64, "calls", SECRET_CALL);
        }
        let puts = calls("S3.PUT") + calls("S3.POST");
        if puts > 0 {
            self.add(format!("{name}: S3 writes"), puts as f64, "requests", S3_WRITE);
        }
        let gets = calls("S3.GET") + calls("S3.HEAD");
        if gets > 0 {
            self.add(format!("{name}: S3 reads"), gets as f64, "requests", S3_READ);
        }
    }

    /// Events published for consumers: on the bus, one entry each and the bus's delivery to the
    /// events queue; on the queue, the `SendMessageBatch` requests measured.
    fn events(&mut self, usage: &Usage, deployment: Deployment) {
        let entries = usage.units.get("SQS batch entries").copied().unwrap_or(0.0);
        match deployment {
            Deployment::Default => {
                self.add(format!("{}: EventBridge PutEvents entries", usage.role), entries, "entries", BUS_EVENT);
                self.add("the bus delivering to the events queue (SQS)", entries, "requests", SQS_STANDARD);
            }
            Deployment::Lean => {
                let requests = usage.calls.get("AmazonSQS.SendMessageBatch").copied().unwrap_or(0);
                let what = format!("{}: SendMessageBatch to the events queue", usage.role);
                self.add(what, requests as f64, "requests", SQS_STANDARD);
            }
        }
    }
}

fn usage<'a>(report: &'a Report, role: &str) -> &'a Usage {
    report.usage.iter().find(|u| u.role == role).unwrap_or_else(|| panic!("no usage of {role}"))
}

/// An inbound path (users' messages, or statuses): API Gateway, ingest, the inbound queue, the
/// processor, the bus.
#[must_use]
pub fn inbound(name: &str, report: &Report, deployment: Deployment) -> PathCost {
    let ingest = usage(report, "webhook-ingest");
    let processor = usage(report, "event-processor");
    let mut cost = PathCost { name: name.to_owned(), items: report.items, ..PathCost::default() };
    if deployment == Deployment::Default {
        cost.add("API Gateway HTTP API", ingest.invocations as f64, "requests", HTTP_API_REQUEST);
        cost.add("API Gateway access logs", ingest.invocations as f64 * ACCESS_LOG_BYTES, "bytes", LOG_GB / 1e9);
    }
    cost.lambda(ingest);
    let sends: u64 = ingest.calls.iter().filter(|(op, _)| op.starts_with("AmazonSQS.Send")).map(|(_, n)| n).sum();
    cost.add("webhook-ingest: SQS sends to the inbound queue", sends as f64, "requests", SQS_STANDARD);
    cost.state(ingest);
    let batches = processor.invocations as f64;
    cost.add("event source mapping: ReceiveMessage + DeleteMessageBatch", 2.0 * batches, "requests", SQS_STANDARD);
    cost.lambda(processor);
    cost.state(processor);
    cost.events(processor, deployment);
    cost
}

/// The send path: the producer's request on the FIFO queue, the sender, the bus.
#[must_use]
pub fn sends(report: &Report, deployment: Deployment) -> PathCost {
    let sender = usage(report, "sender");
    let mut cost = PathCost { name: "a template send".into(), items: report.items, ..PathCost::default() };
    cost.add("the producer's SendMessage (FIFO; a tenth when batched)", report.items as f64, "requests", SQS_FIFO);
    let batches = sender.invocations as f64;
    cost.add("event source mapping: ReceiveMessage + DeleteMessageBatch (FIFO)", 2.0 * batches, "requests", SQS_FIFO);
    let visibility = sender.calls.get("AmazonSQS.ChangeMessageVisibility").copied().unwrap_or(0);
    cost.add("sender: ChangeMessageVisibility (retries, deferrals)", visibility as f64, "requests", SQS_FIFO);
    cost.lambda(sender);
    cost.state(sender);
    cost.events(sender, deployment);
    cost
}

/// The three paths measured with `items` each: (messages, statuses, sends).
pub async fn run(items: usize, seed: u64) -> (Report, Report, Report) {
    let messages = ingest::run(&ingest::Plan::clean(items, seed, 1.0)).await;
    let statuses = ingest::run(&ingest::Plan::clean(items, seed + 1, 0.0)).await;
    let sent = send::run(&send::Plan::clean(items, seed + 2)).await;
    (messages, statuses, sent)
}

/// The priced paths as Markdown and JSON: each line of the default deployment, then both
/// deployments against the managed fee.
#[must_use]
pub fn report(messages: &Report, statuses: &Report, sent: &Report) -> (String, Value) {
    let priced = |deployment| {
        [
            inbound("a user's message", messages, deployment),
            inbound("a status", statuses, deployment),
            sends(sent, deployment),
        ]
    };
    let fee = MANAGED_FEE * 1e6;
    let mut out = String::new();
    let mut json = serde_json::Map::new();
    let defaults = priced(Deployment::Default);
    for path in &defaults {
        let _ =
            writeln!(out, "\n**{}** ({} measured): ${:.2} per million\n", path.name, path.items, path.per_million());
        let _ = writeln!(out, "| item | per {} | $ per million |\n|---|---:|---:|", path.name);
        for line in &path.lines {
            let _ = writeln!(out, "| {} | {:.3} {} | {:.3} |", line.what, line.per_item, line.unit, line.per_million);
        }
    }
    let _ = writeln!(
        out,
        "\n| per million | deployment | ours | managed fee (${MANAGED_FEE}/message) | ours / fee | goal < 1/1000 |\n|---|---|---:|---:|---:|---|"
    );
    for deployment in [Deployment::Default, Deployment::Lean] {
        let [message, status, send] = priced(deployment);
        let send_with_statuses = send.per_million() + STATUSES_PER_SEND * status.per_million();
        let row = |what: &str, ours: f64| {
            format!(
                "| {what} | {} | ${ours:.2} | ${fee:.0} | 1/{:.0} | {} |\n",
                deployment.name(),
                fee / ours,
                if ours < fee / 1000.0 { "met" } else { "missed" }
            )
        };
        out.push_str(&row("users' messages in", message.per_million()));
        out.push_str(&row("template sends out, each with its 3 statuses", send_with_statuses));
        out.push_str(&row("template sends out, the send alone", send.per_million()));
        let key = match deployment {
            Deployment::Default => "",
            Deployment::Lean => "lean_",
        };
        json.insert(format!("{key}message_per_million"), json!(message.per_million()));
        json.insert(format!("{key}status_per_million"), json!(status.per_million()));
        json.insert(format!("{key}send_per_million"), json!(send.per_million()));
        json.insert(format!("{key}send_with_statuses_per_million"), json!(send_with_statuses));
    }
    json.insert(
        "usage".into(),
        json!([
            messages.usage.iter().map(Usage::json).collect::<Vec<_>>(),
            statuses.usage.iter().map(Usage::json).collect::<Vec<_>>(),
            sent.usage.iter().map(Usage::json).collect::<Vec<_>>()
        ]),
    );
    (out, Value::Object(json))
}
