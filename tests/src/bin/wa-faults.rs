//! `wa-faults [ingest|send|rotation|all] [--items N] [--seed S] [--out FILE]`: the fault-injection
//! runs at full size (10,000 deliveries or requests by default), each printed as a table; exits
//! non-zero when any goal fails. See `wa_tests::faults`. `wa-faults cost --items N`: the same
//! paths without faults, priced ([`wa_tests::faults::cost`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wa_tests::faults::{Report, cost, ingest, rotation, send};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let which = args.first().filter(|a| !a.starts_with("--")).cloned().unwrap_or_else(|| "all".into());
    let items: usize = value("--items").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seed: u64 = value("--seed").and_then(|v| v.parse().ok()).unwrap_or(2026);
    if !["ingest", "send", "rotation", "all", "cost"].contains(&which.as_str()) {
        eprintln!("usage: wa-faults [ingest|send|rotation|all|cost] [--items N] [--seed S] [--out FILE]");
        std::process::exit(2);
    }
    if which == "cost" {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
        let (markdown, json) = runtime.block_on(async {
            let (messages, statuses, sent) = cost::run(items, seed).await;
            for report in [&messages, &statuses, &sent] {
                eprintln!("{}", report.markdown());
                assert!(report.lost == 0 && report.duplicated == 0, "a clean run lost or duplicated");
            }
            cost::report(&messages, &statuses, &sent)
        });
        println!("{markdown}");
        if let Some(out) = value("--out") {
            std::fs::write(&out, format!("{markdown}\n<!-- {json} -->\n")).unwrap_or_else(|e| panic!("{out}: {e}"));
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let mut reports: Vec<Report> = Vec::new();
    runtime.block_on(async {
        if which == "ingest" || which == "all" {
            reports.push(ingest::run(&ingest::Plan::new(items, seed)).await);
            println!("{}", reports.last().unwrap().markdown());
        }
        if which == "send" || which == "all" {
            reports.push(send::run(&send::Plan::new(items, seed)).await);
            println!("{}", reports.last().unwrap().markdown());
        }
        if which == "rotation" || which == "all" {
            reports.push(rotation::run(&rotation::Plan::new(seed)).await);
            println!("{}", reports.last().unwrap().markdown());
        }
    });
    if let Some(out) = value("--out") {
        let text: String = reports.iter().map(Report::markdown).collect::<Vec<_>>().join("\n");
        std::fs::write(&out, text).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
    let failed: Vec<&str> = reports.iter().filter(|r| !r.passed()).map(|r| r.path.as_str()).collect();
    if !failed.is_empty() {
        eprintln!("goals not met: {failed:?}");
        std::process::exit(1);
    }
}
