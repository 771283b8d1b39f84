//! The benchmark drivers, one binary (one release link instead of five): `wa-bench <command> [args]`.
//! `scripts/bench.sh` runs them all; each command's module says what it measures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

mod campaign;
mod coldstart;
mod dev;
mod ingest_cpu;
mod media;
mod pacing;
mod payload;
mod receiver;
mod sqs_cpu;

const USAGE: &str = "usage: wa-bench campaign [recipients] [--no-flush]
       wa-bench campaign-sqs [recipients]
       wa-bench coldstart <label> <command> [args...]
       wa-bench dev <listen address> <data dir> [--pipeline]
       wa-bench ingest-cpu [criterion output directory]
       wa-bench media <media-fetcher binary> [megabytes]
       wa-bench pacing
       wa-bench payload <messages> <file> [app secret]
       wa-bench receiver empty|ingest <port> [app secret]
       wa-bench sqs-cpu";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("campaign") => campaign::main(rest),
        Some("campaign-sqs") => campaign::sqs(rest),
        Some("coldstart") => coldstart::main(rest),
        Some("dev") => return dev::main(rest),
        Some("ingest-cpu") => ingest_cpu::main(rest),
        Some("media") => media::main(rest),
        Some("pacing") => pacing::main(),
        Some("payload") => payload::main(rest),
        Some("receiver") => receiver::main(rest),
        Some("sqs-cpu") => sqs_cpu::main(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
