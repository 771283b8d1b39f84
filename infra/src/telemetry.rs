//! JSON logs through `tracing`, and CloudWatch metrics in the Embedded Metric Format.

use std::time::{SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "WhatsAppPipeline";

/// Installs a JSON log subscriber on stdout (levels from `RUST_LOG`, see [`log_filter`]). Safe to
/// call twice.
pub fn init_logs() {
    init_logs_to(std::io::stdout);
}

/// Like [`init_logs`], writing to `writer` (tests capture the logs in a file to check them).
pub fn init_logs_to<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(writer)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time();
    let (filter, unreadable) = match log_filter(std::env::var("RUST_LOG").ok().as_deref()) {
        Ok(filter) => (filter, None),
        Err(error) => (info_filter(), Some(error)),
    };
    let _ = tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(layer, filter)).try_init();
    if let Some(error) = unreadable {
        tracing::warn!(%error, "RUST_LOG is not a level or a list of target=level; logging at info");
    }
}

/// The log levels `RUST_LOG` asks for: a level (`debug`), per-target levels, or both
/// (`warn,webhook_ingest=debug`); `info` when unset or empty. Plain target filters, without the
/// regular expressions of `tracing`'s `EnvFilter` (smaller functions, no regex engine).
pub fn log_filter(
    value: Option<&str>,
) -> Result<tracing_subscriber::filter::Targets, tracing_subscriber::filter::ParseError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => value.parse(),
        None => Ok(info_filter()),
    }
}

fn info_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Renders one EMF line: counts under `function`, each with the given dimension.
#[must_use]
pub fn emf_line(function: &str, dimension: Option<(&str, &str)>, counts: &[(&str, f64)]) -> String {
    let mut root = serde_json::Map::new();
    let mut dimensions = vec![serde_json::Value::from("Function")];
    root.insert("Function".into(), function.into());
    if let Some((name, value)) = dimension {
        dimensions.push(name.into());
        root.insert(name.into(), value.into());
    }
    let metrics: Vec<serde_json::Value> =
        counts.iter().map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"})).collect();
    for (name, value) in counts {
        root.insert((*name).into(), (*value).into());
    }
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": now_millis(),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": metrics}],
        }),
    );
    serde_json::Value::Object(root).to_string()
}

/// Writes an EMF line to stdout, where Lambda's log agent turns it into CloudWatch metrics.
pub fn emit(function: &str, dimension: Option<(&str, &str)>, counts: &[(&str, f64)]) {
    if METRICS_ON.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{}", emf_line(function, dimension, counts));
    }
}

static METRICS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Stops printing EMF lines (the local stack's console is for people; CloudWatch is not there).
pub fn silence_metrics() {
    METRICS_ON.store(false, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn log_filter_reads_levels_and_targets() {
        let info = log_filter(None).unwrap();
        assert!(info.would_enable("webhook_ingest", &Level::INFO));
        assert!(!info.would_enable("webhook_ingest", &Level::DEBUG));
        assert_eq!(format!("{:?}", log_filter(Some("  ")).unwrap()), format!("{info:?}"));
        let debug = log_filter(Some("debug")).unwrap();
        assert!(debug.would_enable("aws_smithy_runtime", &Level::DEBUG));
        let mixed = log_filter(Some("warn,webhook_ingest=debug")).unwrap();
        assert!(mixed.would_enable("webhook_ingest", &Level::DEBUG));
        assert!(mixed.would_enable("wa_infra::sqs", &Level::WARN));
        assert!(!mixed.would_enable("wa_infra::sqs", &Level::INFO));
        assert!(log_filter(Some("webhook_ingest=loud")).is_err());
    }

    #[test]
    fn emf_shape() {
        let line = emf_line("webhook-ingest", Some(("Kind", "message")), &[("EventsIn", 3.0)]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["EventsIn"], 3.0);
        assert_eq!(v["Kind"], "message");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][1], "Kind");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
    }
}
