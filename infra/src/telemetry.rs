//! JSON logs through `tracing`, and CloudWatch metrics in the Embedded Metric Format.

use std::time::{SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "WhatsAppPipeline";

/// Installs a JSON log subscriber on stdout (level from `RUST_LOG`, default `info`). Safe to
/// call twice.
pub fn init_logs() {
    init_logs_to(std::io::stdout);
}

/// Like [`init_logs`], writing to `writer` (tests capture the logs in a file to check them).
pub fn init_logs_to<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
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
