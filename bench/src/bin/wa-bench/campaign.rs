//! Campaigns on the local stack (#26): `wa dev`'s own stack (ingest, processor and sender pollers
//! on SQLite, the simulator as Meta, statuses and all) in this process: five pollers (the
//! template's default `SenderMaxConcurrency`) for the four numbers, 25 for the upgraded one.
//!
//! 1. One campaign of `n` recipients over four business numbers (`--phone-number-id` four
//!    times), queued with `wa campaign send`'s code; the simulator allows 80 messages/s per number. Wall time from
//!    the first request queued to the last accepted, against the theoretical `n / 320` s; 130429
//!    answers; each number's rate.
//! 2. The simulator announces `THROUGHPUT_UPGRADE` for the first number (Meta's signed quality
//!    webhook, through ingest and the processor); once the senders read 1,000/s for it, a campaign
//!    of `n` recipients on that number alone, its statuses not posted (in AWS other functions
//!    take them): the achieved rate against 1,000/s.
//!
//! 3. Meta announces TIER_250 for a fresh stack's portfolio: a two-variant campaign of `n`
//!    recipients, interrupted and resumed, reaches exactly 250 people and defers the rest (on the
//!    outbound queue, none failed, none in the DLQ, the simulator never refusing a send for its
//!    own count of the limit); the report shows both variants.
//!
//! Usage: `wa-bench campaign [recipients] [--no-flush]` (default 20,000; `--no-flush` is
//! `wa dev --no-flush`: commits not flushed to the disk one by one). Prints one JSON line.

use std::time::{Duration, Instant};

use serde_json::json;
use wa_cli::campaign::{Outbound, SendOptions};
use wa_cli::dev::{DEFAULT_SENDER_POLLERS, DevOptions, DevStack};
use wa_core::campaign::Variant;
use wa_core::ports::LimitStore;
use wa_simulator::Simulator;

const NUMBERS: [&str; 4] = ["100000000000001", "100000000000002", "100000000000003", "100000000000004"];
const RATE: u32 = 80;
/// Concurrent sender invocations (`SenderMaxConcurrency`): what 1,000 messages/s on one number
/// takes with a batch of 10 in about 200 ms on this stack.
const POLLERS: usize = 25;

fn audience(dir: &std::path::Path, name: &str, prefix: &str, n: usize) -> std::path::PathBuf {
    let mut csv = String::from("to,1\n");
    for i in 0..n {
        csv.push_str(&format!("{prefix}{i:06},\"10:{:02}\"\n", i % 60));
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv).unwrap();
    path
}

fn options(campaign: &str, audience: std::path::PathBuf, numbers: &[&str]) -> SendOptions {
    SendOptions {
        campaign: campaign.into(),
        audience,
        variants: vec![Variant::parse("a=reminder_v1:50").unwrap(), Variant::parse("b=reminder_v2:50").unwrap()],
        phone_number_ids: numbers.iter().map(|n| (*n).to_owned()).collect(),
        language: "en".into(),
        category: Some(wa_core::send::Category::Utility),
        progress: false,
    }
}

/// Waits until the simulator has accepted `total` sends; the time it took from `started`.
async fn drained(sim: &Simulator, total: usize, started: Instant) -> f64 {
    while sim.accepted_count() < total {
        assert!(started.elapsed() < Duration::from_secs(900), "only {} of {total} sent", sim.accepted_count());
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

/// Waits until the stack has processed every inbound event (the statuses of earlier sends).
async fn idle(stack: &DevStack) {
    let started = Instant::now();
    loop {
        let info = stack.queues.inbound.info().unwrap();
        if info.visible == 0 && info.in_flight == 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the processor never caught up: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One two-variant campaign of `n` over the four numbers at 80/s: wall time against the
/// theoretical, 130429 answers, each number's rate.
async fn four_numbers(
    stack: &DevStack,
    dir: &std::path::Path,
    n: usize,
    name: &str,
    prefix: &str,
) -> serde_json::Value {
    let sim = stack.simulator.as_ref().unwrap();
    let outbound = Outbound::Local(stack.queues.outbound.clone());
    let (accepted_before, seen_before) = (sim.accepted_count(), sim.seen().len());
    let plan = options(&format!("bench-{name}"), audience(dir, name, prefix, n), &NUMBERS);
    let started = Instant::now();
    // Interrupted after 50 ms (as Ctrl-C would stop it), then run again to the end.
    let cut =
        tokio::time::timeout(Duration::from_millis(50), wa_cli::campaign::send(&plan, &stack.state, &outbound)).await;
    assert!(cut.is_err(), "the first run must be cut short");
    let summary = wa_cli::campaign::send(&plan, &stack.state, &outbound).await.unwrap();
    let queued_s = started.elapsed().as_secs_f64();
    let queued = summary.queued + summary.repeated;
    assert_eq!(queued, n);
    assert!(summary.repeated > 0, "the cut run had queued a part");
    let wall_s = drained(sim, accepted_before + queued, started).await;
    let theoretical_s = queued as f64 / f64::from(RATE * NUMBERS.len() as u32);
    let accepted = sim.accepted();
    let mut numbers = serde_json::Map::new();
    for number in NUMBERS {
        let mut times: Vec<u64> =
            accepted[accepted_before..].iter().filter(|a| a.phone_number_id == number).map(|a| a.at_ms).collect();
        let (per_s, busiest) = rate(&mut times);
        numbers.insert(number.into(), json!({"accepted": times.len(), "rate_per_s": per_s, "busiest_1s": busiest}));
    }
    let recipients: std::collections::HashSet<&str> =
        accepted[accepted_before..].iter().filter_map(|a| a.body["to"].as_str()).collect();
    assert_eq!(
        recipients.len(),
        n,
        "everyone once: {} sends to {} people",
        accepted.len() - accepted_before,
        recipients.len()
    );
    let seen = sim.seen();
    let throttled = seen[seen_before..].iter().filter(|s| s.code == Some(130_429)).count();
    // `WA_BENCH_SEEN=DIR`: every Graph call of the run as the simulator saw it (number, answer,
    // time), to study where 130429 answers come from.
    if let Some(out) = std::env::var_os("WA_BENCH_SEEN") {
        let lines: Vec<String> = seen[seen_before..].iter().map(|s| json!(s).to_string()).collect();
        std::fs::write(std::path::Path::new(&out).join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
    }
    json!({"recipients": queued, "interrupted_after_queueing": summary.repeated, "messaged_twice": 0,
        "numbers": NUMBERS.len(), "rate_per_number": RATE,
        "queued_s": queued_s, "wall_s": wall_s, "theoretical_s": theoretical_s,
        "wall_pct_of_theoretical": 100.0 * wall_s / theoretical_s, "graph_calls": seen.len() - seen_before,
        "throttled_130429": throttled, "per_number": numbers})
}

/// Part 3: a TIER_250 portfolio and a campaign of `n`, interrupted and resumed.
async fn limited(dir: &std::path::Path, n: usize, flush: bool) -> serde_json::Value {
    let stack = DevStack::start(&DevOptions {
        messages_per_second: RATE,
        sender_pollers: DEFAULT_SENDER_POLLERS,
        flush,
        ..DevOptions::loopback(dir.join("limited"))
    })
    .await
    .unwrap();
    let sim = stack.simulator.as_ref().unwrap();
    let portfolio = wa_core::limit::DEFAULT_PORTFOLIO;
    sim.announce_quality(NUMBERS[0], "ONBOARDING", "TIER_250").await.unwrap();
    let announced = Instant::now();
    while stack.state.limit_facts(&[], &[portfolio]).await.unwrap().windows[portfolio].tier
        != Some(wa_core::limit::Tier::Limited(250))
    {
        assert!(announced.elapsed() < Duration::from_secs(30), "the tier was never learned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outbound = Outbound::Local(stack.queues.outbound.clone());
    let plan = options("bench-limited", audience(dir, "limited", "1670", n), &NUMBERS);
    let started = Instant::now();
    let cut =
        tokio::time::timeout(Duration::from_millis(50), wa_cli::campaign::send(&plan, &stack.state, &outbound)).await;
    assert!(cut.is_err(), "the first run must be cut short");
    let summary = wa_cli::campaign::send(&plan, &stack.state, &outbound).await.unwrap();
    assert_eq!(summary.queued + summary.repeated, n);
    let deferred = (n - 250) as u64;
    loop {
        let info = stack.queues.outbound.info().unwrap();
        if sim.accepted_count() >= 250 && info.visible == 0 && info.in_flight == deferred {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "sent {}, queue {info:?}", sim.accepted_count());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = sim.accepted();
    let recipients: std::collections::HashSet<&str> = accepted.iter().filter_map(|a| a.body["to"].as_str()).collect();
    assert_eq!((accepted.len(), recipients.len()), (250, 250), "exactly the limit, each once");
    assert_eq!(sim.limit_refusals(), 0, "never past Meta's limit");
    let dlq = stack.queues.outbound.dlq().info().unwrap().visible;
    assert_eq!(dlq, 0, "deferred, not failed");
    // The report counts what the statuses say: once the processor has taken them all.
    let lookup = wa_cli::campaign::local_lookup(&stack.state);
    let funnels = loop {
        idle(&stack).await;
        let funnels = wa_cli::campaign::report(&stack.state, &lookup, "bench-limited", Duration::from_secs(86_400))
            .await
            .unwrap();
        if funnels.iter().map(|f| f.sent).sum::<u64>() == 250 {
            break funnels;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the report never showed the 250 sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let svg = wa_cli::campaign::svg("bench-limited", &funnels).unwrap();
    assert!(svg.contains("variant a") && svg.contains("variant b"));
    let in_flight = stack.queues.outbound.info().unwrap().in_flight;
    stack.stop().await;
    json!({"recipients": n, "tier": "TIER_250", "interrupted_after_queueing": summary.repeated,
        "sent": accepted.len(), "messaged_twice": 0, "deferred_on_queue": in_flight, "dlq": dlq,
        "simulator_131048": 0, "settled_s": settled_s,
        "report": funnels.iter().map(|f| json!({"variant": f.variant, "queued": f.queued, "sent": f.sent})).collect::<Vec<_>>()})
}

pub fn main(args: &[String]) {
    let n: usize = args.first().map_or(20_000, |a| a.parse().expect("recipients"));
    let flush = !args.iter().any(|a| a == "--no-flush");
    wa_infra::telemetry::silence_metrics();
    wa_cli::runtime().unwrap().block_on(async {
        let dir = std::env::temp_dir().join(format!("wa-bench-campaign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stack = DevStack::start(&DevOptions {
            messages_per_second: RATE,
            sender_pollers: DEFAULT_SENDER_POLLERS,
            flush,
            ..DevOptions::loopback(dir.join("four"))
        })
        .await
        .unwrap();
        let sim = stack.simulator.as_ref().unwrap();
        // 1. One campaign over four numbers at 80/s, statuses and all; then again with the
        //    statuses not posted (the sender alone, as part 2 measures it).
        let mut four = four_numbers(&stack, &dir, n, "four", "1650").await;
        eprintln!("four numbers: {four}");
        // Its report and funnel picture, once the statuses are in.
        idle(&stack).await;
        let lookup = wa_cli::campaign::local_lookup(&stack.state);
        let funnels =
            wa_cli::campaign::report(&stack.state, &lookup, "bench-four", Duration::from_secs(86_400)).await.unwrap();
        let svg = wa_cli::campaign::svg("bench-four", &funnels).unwrap();
        assert!(svg.contains("variant a") && svg.contains("variant b"));
        four["report"] = json!(
            funnels
                .iter()
                .map(|f| json!({"variant": f.variant, "queued": f.queued, "sent": f.sent,
            "delivered": f.delivered, "read": f.read}))
                .collect::<Vec<_>>()
        );
        sim.configure(|c| c.webhook_url = None);
        idle(&stack).await;
        let four_alone = four_numbers(&stack, &dir, n, "four-alone", "1640").await;
        eprintln!("four numbers, no statuses: {four_alone}");
        stack.stop().await;

        // 2. THROUGHPUT_UPGRADE for the first number, learned from Meta's webhook, on a stack
        //    running as many senders as 1,000/s takes. A user's message first: its webhook's
        //    metadata tells the processor the number's display number, which the upgrade names.
        let stack = DevStack::start(&DevOptions {
            messages_per_second: RATE,
            sender_pollers: POLLERS,
            flush,
            ..DevOptions::loopback(dir.join("upgraded"))
        })
        .await
        .unwrap();
        let sim = stack.simulator.as_ref().unwrap();
        let outbound = Outbound::Local(stack.queues.outbound.clone());
        let number = NUMBERS[0];
        sim.user_writes(number, "16500000001", "Ana", "hello").await.unwrap();
        idle(&stack).await;
        let calls_a = sim.seen().len();
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
        // The statuses of 1,000 sends a second are 3,000 webhooks a second into the same two
        // cores; in AWS other functions take them. The sender alone is measured here.
        sim.configure(|c| c.webhook_url = None);
        let before = sim.accepted_count();
        let plan = options("bench-upgraded", audience(&dir, "upgraded", "1660", n), &[number]);
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
        stack.stop().await;
        // 3. TIER_250.
        let limited = limited(&dir, n, flush).await;
        eprintln!("TIER_250: {limited}");
        println!(
            "{}",
            json!({"flush_every_commit": flush, "pollers_four": DEFAULT_SENDER_POLLERS, "pollers_upgraded": POLLERS, "four_numbers": four,
            "four_numbers_no_statuses": four_alone, "upgraded": upgraded, "tier_250": limited})
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `wa-bench campaign-sqs [recipients]`: `wa campaign send --queue-url` against a loopback SQS
/// (and DynamoDB) stand-in answering at once: the rate the command queues requests at with
/// `SendMessageBatch`, 32 batches in flight (the goal: ≥ 5,000 requests/s). Prints one JSON line.
pub fn sqs(args: &[String]) {
    let n: usize = args.first().map_or(20_000, |a| a.parse().expect("recipients"));
    let endpoint = wa_bench::fake_aws::start();
    wa_cli::runtime().unwrap().block_on(async move {
        let config = wa_bench::fake_aws::sdk_config(&endpoint).await;
        let dir = std::env::temp_dir().join(format!("wa-bench-campaign-sqs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plan = options("bench-sqs", audience(&dir, "sqs", "1670", n), &NUMBERS);
        let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&config), "state");
        let outbound = Outbound::Sqs {
            client: aws_sdk_sqs::Client::new(&config),
            url: format!("{endpoint}/000000000000/outbound.fifo"),
        };
        let started = Instant::now();
        let summary = wa_cli::campaign::send(&plan, &state, &outbound).await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(summary.queued, n);
        println!(
            "{}",
            json!({"recipients": n, "queued": summary.queued, "seconds": seconds,
            "requests_per_s": n as f64 / seconds})
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
