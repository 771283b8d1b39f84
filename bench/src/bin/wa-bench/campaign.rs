//! Campaigns on the local stack (#26): `wa dev`'s own stack (ingest, processor and five sender
//! pollers on SQLite, the simulator as Meta, statuses and all) in this process.
//!
//! 1. Four campaigns of `n / 4` recipients, one per business number, queued at once with
//!    `wa campaign send`'s code; the simulator allows 80 messages/s per number. Wall time from
//!    the first request queued to the last accepted, against the theoretical `n / 320` s; 130429
//!    answers; each number's rate.
//! 2. The simulator announces `THROUGHPUT_UPGRADE` for the first number (Meta's signed quality
//!    webhook, through ingest and the processor); once the senders read 1,000/s for it, a campaign
//!    of `n` recipients on that number alone: the achieved rate against 1,000/s.
//!
//! Usage: `wa-bench campaign [recipients]` (default 20,000). Prints one JSON line.

use std::time::{Duration, Instant};

use serde_json::json;
use wa_cli::campaign::{Outbound, SendOptions};
use wa_cli::dev::{DevOptions, DevStack};
use wa_core::campaign::Variant;
use wa_core::ports::LimitStore;
use wa_simulator::Simulator;

const NUMBERS: [&str; 4] = ["100000000000001", "100000000000002", "100000000000003", "100000000000004"];
const RATE: u32 = 80;

fn audience(dir: &std::path::Path, name: &str, prefix: &str, n: usize) -> std::path::PathBuf {
    let mut csv = String::from("to,1\n");
    for i in 0..n {
        csv.push_str(&format!("{prefix}{i:06},\"10:{:02}\"\n", i % 60));
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv).unwrap();
    path
}

fn options(campaign: &str, audience: std::path::PathBuf, number: &str) -> SendOptions {
    SendOptions {
        campaign: campaign.into(),
        audience,
        variants: vec![Variant::parse("a=reminder_v1:50").unwrap(), Variant::parse("b=reminder_v2:50").unwrap()],
        phone_number_id: number.into(),
        language: "en".into(),
        category: Some(wa_core::send::Category::Utility),
        progress: false,
    }
}

/// Waits until the simulator has accepted `total` sends; the time it took from `started`.
async fn drained(sim: &Simulator, total: usize, started: Instant) -> f64 {
    while sim.accepted().len() < total {
        assert!(started.elapsed() < Duration::from_secs(900), "only {} of {total} sent", sim.accepted().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed().as_secs_f64()
}

/// Sends per second between the first and the last of `times` (ms), and the busiest 1-s window.
fn rate(times: &mut [u64]) -> (f64, usize) {
    times.sort_unstable();
    let span = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let mut busiest = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 1000 {
            start += 1;
        }
        busiest = busiest.max(end - start + 1);
    }
    ((times.len() - 1) as f64 / span, busiest)
}

pub fn main(args: &[String]) {
    let n: usize = args.first().map_or(20_000, |a| a.parse().expect("recipients"));
    wa_infra::telemetry::silence_metrics();
    wa_cli::runtime().unwrap().block_on(async {
        let dir = std::env::temp_dir().join(format!("wa-bench-campaign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stack = DevStack::start(&DevOptions {
            listen: "127.0.0.1:0".into(),
            simulator_listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            real_graph: None,
            messages_per_second: RATE,
            webhook_only: false,
            max_event_age_s: None,
            quiet_outbox: true,
            messaging_limit: None,
        })
        .await
        .unwrap();
        let sim = stack.simulator.as_ref().unwrap();
        let outbound = Outbound::Local(stack.queues.outbound.clone());

        // 1. Four numbers at 80/s.
        let per_number = n / NUMBERS.len();
        let plans: Vec<SendOptions> = NUMBERS
            .iter()
            .enumerate()
            .map(|(k, number)| {
                let file = audience(&dir, &format!("a{k}"), &format!("165{k}"), per_number);
                options(&format!("bench-{k}"), file, number)
            })
            .collect();
        let started = Instant::now();
        let sends = plans.iter().map(|plan| wa_cli::campaign::send(plan, &stack.state, &outbound));
        let summaries = futures_util::future::join_all(sends).await;
        let queued_s = started.elapsed().as_secs_f64();
        let queued: usize = summaries.into_iter().map(|s| s.unwrap().queued).sum();
        assert_eq!(queued, per_number * NUMBERS.len());
        let wall_s = drained(sim, queued, started).await;
        let theoretical_s = queued as f64 / f64::from(RATE * NUMBERS.len() as u32);
        let accepted = sim.accepted();
        let mut numbers = serde_json::Map::new();
        for number in NUMBERS {
            let mut times: Vec<u64> =
                accepted.iter().filter(|a| a.phone_number_id == number).map(|a| a.at_ms).collect();
            let (per_s, busiest) = rate(&mut times);
            numbers.insert(number.into(), json!({"accepted": times.len(), "rate_per_s": per_s, "busiest_1s": busiest}));
        }
        let seen = sim.seen();
        let throttled = seen.iter().filter(|s| s.code == Some(130_429)).count();
        let calls_a = seen.len();
        let four = json!({"recipients": queued, "numbers": NUMBERS.len(), "rate_per_number": RATE,
            "queued_s": queued_s, "wall_s": wall_s, "theoretical_s": theoretical_s,
            "wall_pct_of_theoretical": 100.0 * wall_s / theoretical_s, "graph_calls": calls_a,
            "throttled_130429": throttled, "per_number": numbers});
        eprintln!("four numbers: {four}");

        // 2. THROUGHPUT_UPGRADE for the first number, learned from Meta's webhook.
        let number = NUMBERS[0];
        let announced = Instant::now();
        sim.announce_quality(number, "THROUGHPUT_UPGRADE", "TIER_UNLIMITED").await.unwrap();
        loop {
            let facts = stack.state.limit_facts(&[number], &[]).await.unwrap();
            if facts.rates.get(number) == Some(&1000) {
                break;
            }
            assert!(announced.elapsed() < Duration::from_secs(30), "the upgrade was never learned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let learned_s = announced.elapsed().as_secs_f64();
        let before = sim.accepted().len();
        let plan = options("bench-upgraded", audience(&dir, "upgraded", "1660", n), number);
        let started = Instant::now();
        let summary = wa_cli::campaign::send(&plan, &stack.state, &outbound).await.unwrap();
        let queued_s = started.elapsed().as_secs_f64();
        let wall_s = drained(sim, before + summary.queued, started).await;
        let accepted = sim.accepted();
        let mut times: Vec<u64> = accepted[before..].iter().map(|a| a.at_ms).collect();
        let (per_s, busiest) = rate(&mut times);
        let seen = sim.seen();
        let throttled = seen[calls_a..].iter().filter(|s| s.code == Some(130_429)).count();
        let upgraded = json!({"recipients": summary.queued, "rate_per_number": 1000, "learned_after_s": learned_s,
            "queued_s": queued_s, "wall_s": wall_s, "rate_per_s": per_s, "pct_of_limit": per_s / 10.0,
            "busiest_1s": busiest, "throttled_130429": throttled});
        eprintln!("upgraded number: {upgraded}");
        println!("{}", json!({"four_numbers": four, "upgraded": upgraded}));
        stack.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
