//! `wa dev` for the webhook throughput benchmark: the same code as the `wa` binary's `dev`
//! command (`wa_cli::run_dev` on `wa_cli::runtime()`, EMF metric lines silenced, the simulator
//! standing in for the Graph API, its default messages/s), started from this driver so that the benchmark
//! links one release binary instead of two.
//!
//! Usage: `wa-bench dev <listen address> <data dir> [--pipeline]`: without `--pipeline` it is
//! `wa dev --webhook-only` (the webhook and its durable queue only); with it, plain `wa dev` (the
//! event processor and the sender run too).

use std::process::ExitCode;

pub fn main(args: &[String]) -> ExitCode {
    let (Some(listen), Some(data_dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: wa-bench dev <listen address> <data dir> [--pipeline]");
        return ExitCode::from(2);
    };
    let options = wa_cli::dev::DevOptions {
        listen: listen.clone(),
        simulator_listen: "127.0.0.1:0".into(),
        data_dir: data_dir.into(),
        real_graph: None,
        messages_per_second: wa_cli::dev::DEFAULT_MESSAGES_PER_SECOND,
        webhook_only: args.get(2).map(String::as_str) != Some("--pipeline"),
        max_event_age_s: wa_bench::MAX_EVENT_AGE_S,
        quiet_outbox: true,
        messaging_limit: None,
        sender_pollers: wa_cli::dev::DEFAULT_SENDER_POLLERS,
        flush: true,
    };
    wa_infra::telemetry::silence_metrics();
    wa_cli::runtime().unwrap().block_on(wa_cli::run_dev(options, false))
}
