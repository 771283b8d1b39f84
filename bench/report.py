#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh (target/bench/) into BENCHMARKS.md on stdout."""
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")
root = pathlib.Path(__file__).resolve().parent.parent


def criterion(group, name):
    path = root / "target/criterion" / group / name / "new/estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"] / 1000.0  # ns -> us


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def wrk_round(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, float(p99.group(1)) * factor, int(non2xx.group(1)) if non2xx else 0


def wrk_files(name):
    return sorted(out.glob(f"{name}.wrk.*.txt"), key=lambda p: int(p.name.split(".")[-2]))


def wrk(name):
    """The median round's requests/s and p99, the non-2xx answers of all rounds, and each round's requests/s."""
    rounds = [wrk_round(p.read_text()) for p in wrk_files(name)]
    median = lambda values: sorted(values)[len(values) // 2]
    return (median([r[0] for r in rounds]), median([r[1] for r in rounds]), sum(r[2] for r in rounds),
            [r[0] for r in rounds])


def fmt(x, digits=1):
    return f"{x:,.{digits}f}"


lines = []
say = lines.append
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
say("# Benchmarks")
say("")
say("Measured in one run of `scripts/bench.sh` on one machine; ratios compare numbers taken in that same run.")
timings = out / "timings.json"
t = json.loads(timings.read_text()) if timings.exists() else {}
if t:
    total = t["setup_and_build_s"] + t["measuring_s"]
    tree = "a clean tree: nothing built before" if t.get("clean_tree") else "what the target directory lacked"
    say(f"That run took {t['setup_and_build_s'] // 60} min {t['setup_and_build_s'] % 60} s to install the peers and build "
        f"({tree}), then {t['measuring_s'] // 60} min {t['measuring_s'] % 60} s measuring: {total // 60} min {total % 60} s "
        f"in all (goal: under 10 minutes on 2 cores from a clean tree: "
        f"{('met' if total < 600 else 'missed') if t.get('clean_tree') else 'this run was not from a clean tree'}).")
say(f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()} (x86_64; Lambda runs the arm64 build).")
say(f"Toolchain: {rustc}; Node.js {node}; peers pinned in `bench/peers/`.")
say("")

say("## 1. Ingest CPU path vs its floor (criterion)")
say("")
say("Floor: HMAC-SHA256 over the body + parsing the API Gateway v2 envelope + parsing the body as JSON.")
say("Ingest: parsing the envelope + `webhook_ingest::process` — signature check, parse, split into events, serialize, build the SQS `SendMessageBatch` entries (in-memory ports).")
say("")
say("| payload | floor (µs) | ingest (µs) | ingest / floor | ingest per event (µs) | goal |")
say("|---|---:|---:|---:|---:|---|")
for group, events, label in [("webhook_1_messages", 1, "1 message"), ("webhook_10_messages", 10, "10 messages"),
                             ("webhook_100_messages", 100, "100 messages"), ("spec_examples_16", 16, "Meta's 16 examples (all)")]:
    floor, ingest = criterion(group, "floor"), criterion(group, "ingest")
    say(f"| {label} | {fmt(floor, 2)} | {fmt(ingest, 2)} | {ingest / floor:.2f}× | {fmt(ingest / events, 2)} | ≤ 2× |")
sqs = json.loads((out / "sqs_cpu.json").read_text())
one = json.loads((out / "sqs_cpu_one_core.json").read_text())
say("")
say("SQS client CPU per event enqueued: `SqsQueue::publish`, the functions' publisher, whose `SendMessageBatch` client "
    "(`infra/src/sqs_batch.rs`) signs with the SDK's signer (`aws-sigv4`), sends with reqwest and skips the SDK's per-call "
    "orchestration; the last row is the same batch through the AWS SDK's `send_message_batch`, measured in the same run. "
    "Against a loopback endpoint answering like SQS on a thread of its own, the client on a current-thread runtime as in "
    "the ingest function (CPU of the client thread only, user + system; median of 5 interleaved runs). The second column "
    "pins both threads to one core (`taskset -c 0`): no cross-core wake-ups, which on this VM cost the client about 40 µs "
    "per call (`perf`: `sock_def_readable` → `_raw_spin_unlock_irqrestore`, `finish_task_switch`) — loopback makes the "
    "client pay the receiving side's TCP work and wake-up, which a remote SQS endpoint does not.")
say("")
say("| how | CPU µs / event | CPU µs / event, one core | wall µs / event | goal |")
say("|---|---:|---:|---:|---|")
rows = [("batched_10", "10 events: one `SendMessageBatch` (what ingest does for up to 10)", "≤ 10"),
        ("batched_100", "100 events: 10 `SendMessageBatch` calls, 8 in flight (what ingest does for more)", "≤ 10"),
        ("one_per_call", "one event per call (no batching)", ""),
        ("sdk_batched_10", "10 events through the AWS SDK's `send_message_batch` (for comparison)", "")]
for key, label, goal in rows:
    say(f"| {label} | {fmt(sqs[key]['cpu_us_per_event'])} | {fmt(one[key]['cpu_us_per_event'])} | "
        f"{fmt(sqs[key]['wall_us_per_event'])} | {goal} |")
say(f"| batching's gain (one per call ÷ 10 per call) | {sqs['one_per_call']['cpu_us_per_event'] / sqs['batched_10']['cpu_us_per_event']:.1f}× | "
    f"{one['one_per_call']['cpu_us_per_event'] / one['batched_10']['cpu_us_per_event']:.1f}× | | |")
say(f"| our client's gain (SDK ÷ ours, 10 per call) | {sqs['sdk_batched_10']['cpu_us_per_event'] / sqs['batched_10']['cpu_us_per_event']:.1f}× | "
    f"{one['sdk_batched_10']['cpu_us_per_event'] / one['batched_10']['cpu_us_per_event']:.1f}× | | |")
met = [sqs["batched_10"]["cpu_us_per_event"] <= 10, one["batched_10"]["cpu_us_per_event"] <= 10]
say("")
say(f"Goal ≤ 10 µs per event for a 10-event batch: {'met' if met[0] else 'missed'} across cores, "
    f"{'met' if met[1] else 'missed'} on one core.")
say("")

say("## 2. Cold start, memory, binary size")
say("")
say("Each binary started against a Lambda Runtime API emulator on loopback (`bench/src/bin/wa-bench/coldstart.rs`), median of 10 starts. "
    "First answer = the first invocation done, its answer checked, against a loopback stand-in for AWS and the Cloud API "
    "simulator: webhook-ingest a signed one-message webhook (secret read, SQS batch), webhook-verify Meta's verification GET, "
    "sender a template send (idempotency claim, rate slot, Graph call, outcome published; the simulator's default latency "
    "is in it), event-processor an inbound message (dedupe, conversation state, event published), secret-rotation its "
    "testSecret step (pending version, debug_token), token-watchdog its daily run (secret read, debug_token). The Node.js "
    "function does ingest's verify + parse with Express loaded at init, in the Runtime API loop the managed runtime runs "
    "(`bench/peers/node/lambda.js`).")
say("")
say("| function | to first poll (ms) | to first answer (ms) | peak RSS (MB) | stripped binary (MB, x86_64) |")
say("|---|---:|---:|---:|---:|")
cold = [json.loads(l) for l in (out / "coldstart.jsonl").read_text().splitlines() if l.strip()]
by = {c["label"]: c for c in cold}
for c in cold:
    cell = lambda k, d=1: fmt(c[k], d) if c.get(k) is not None else "–"
    say(f"| {c['label']} | {cell('first_poll_ms')} | {cell('first_answer_ms')} | {cell('peak_rss_mb')} | {cell('binary_mb', 2)} |")
node_c, ingest_c = by["node-express-lambda"], by["webhook-ingest"]
say("")
say(f"Ratios, Node.js / webhook-ingest: first answer {node_c['first_answer_ms'] / ingest_c['first_answer_ms']:.1f}×, "
    f"peak RSS {node_c['peak_rss_mb'] / ingest_c['peak_rss_mb']:.1f}×. Goals: ≤ 10 ms to the first poll, ≤ 50 ms to the first "
    "answer, ≤ 25 MB RSS, ≤ 10.5 MB for a function linking the SDK (sender, event-processor and the rotation functions link "
    "more SDK clients than ingest). The arm64 build Lambda runs is of similar size.")
rust = [c for c in cold if c["label"] != "node-express-lambda"]
misses = [f"{c['label']} {what}" for c in rust for what, ok in [
    (f"first poll {fmt(c['first_poll_ms'])} ms", c["first_poll_ms"] <= 10), (f"first answer {fmt(c['first_answer_ms'])} ms", c["first_answer_ms"] <= 50),
    (f"RSS {fmt(c['peak_rss_mb'])} MB", c["peak_rss_mb"] <= 25), (f"binary {fmt(c['binary_mb'], 2)} MB", c["binary_mb"] <= 10.5)] if not ok]
say("")
say("Goals: " + ("met by every function." if not misses else "missed: " + "; ".join(misses) + "."))
say("")
say("Each function starts with Lambda's environment (the runtime's variables and ours, nothing from the shell), so its "
    "HTTP clients trust the compiled-in root certificates (`infra/src/tls.rs`) as on Lambda; reading the system's store "
    "instead (what `SSL_CERT_FILE`/`SSL_CERT_DIR` select) cost the Graph-calling functions 3.3 ms per client at start-up here.")
say("")

say("## 3. Webhook throughput on loopback")
say("")
say(f"wrk (1 thread, 32 connections, {t.get('wrk_s', 8)} s after a {t.get('wrk_warmup_s', 1)} s warm-up) POSTs one signed 10-message webhook, all on the same 2 cores, one "
    "server process each. Every receiver but `ceiling` checks the signature of every request. Each receiver is measured "
    f"{t.get('wrk_rounds', 1)} times, in interleaved rounds (every receiver once per round, a fresh process each time), so "
    "that the machine's drift during the run (10–15 % on this VM) falls on all of them alike; the table gives each "
    "receiver's median round (requests/s and p99 each), and the rounds' requests/s.")
say("")
say("- `wa-dev` is `wa dev --webhook-only` (its code, `wa_cli::run_dev`, started by the driver: `bench/src/bin/wa-bench/dev.rs`): the ingest handler verifies, splits the payload and enqueues its 10 events "
    "durably into SQLite (committed and flushed to disk before the answer; concurrent requests share a commit and its flush) — the webhook's whole job, as in "
    "Lambda, where the queue is SQS.")
say("- `wa-dev-pipeline` is plain `wa dev`: its event processor consumes the inbound queue meanwhile, in the same process "
    "on the same 2 cores (in AWS it runs elsewhere). wrk repeats one payload, so after the first request the processor's "
    "dedupe claim drops every event (one SQLite write attempt each; receive and delete take one commit per 10 events). "
    "The backlog grows while wrk runs; a receive costs the same however long it is.")
say("- `wa-ingest` is the same router and ingest handler (`bench/src/bin/wa-bench/receiver.rs ingest`) with the events built into "
    "SQS `SendMessageBatch` entries and then dropped: verify + parse + split + serialize, nothing stored — the work the "
    "peers do, which store nothing either.")
say("- `ceiling` is the same HTTP stack answering `200` after reading the body, with no check and no work "
    "(`receiver empty`): what this machine and load generator allow at most.")
say("- Express verifies and parses (`bench/peers/node/express_receiver.js`); pywa validates and dispatches each message to "
    "a handler (`bench/peers/python/pywa_receiver.py`, FastAPI + uvicorn, `skip_duplicate_updates=False`).")
say("")
say("| receiver | requests/s | events/s | p99 (ms) | non-2xx | ÷ Express | ÷ pywa | rounds (requests/s) |")
say("|---|---:|---:|---:|---:|---:|---:|---|")
names = ["ceiling", "wa-ingest", "wa-dev", "wa-dev-pipeline", "express", "pywa"]
results = {name: wrk(name) for name in names}
express, pywa = results["express"][0], results["pywa"][0]
for name, (rps, p99, bad, rounds) in results.items():
    say(f"| {name} | {fmt(rps, 0)} | {fmt(rps * 10, 0)} | {fmt(p99, 2)} | {bad} | {rps / express:.1f}× | {rps / pywa:.1f}× | "
        f"{', '.join(fmt(r, 0) for r in rounds)} |")
say("")
verdict = lambda ratio, goal: "met" if ratio >= goal else "missed"
for name, label in [("wa-dev", "`wa dev` (durable)"), ("wa-ingest", "the ingest handler, nothing stored")]:
    rps = results[name][0]
    say(f"- {label}: {rps / express:.1f}× Express (goal ≥ 5×: {verdict(rps / express, 5)}), "
        f"{rps / pywa:.1f}× pywa (goal ≥ 25×: {verdict(rps / pywa, 25)}).")
target, handler = 5 * express, results["wa-ingest"][0]
left = 2e6 / target - 2e6 / handler
room = (f"so at {fmt(target, 0)} requests/s the machine has {left:.1f} µs of CPU per request left for storing its 10 "
        f"events durably: {left / 10:.1f} µs per event" if left > 0 else
        "below 5× Express in this run, so nothing at all is left for storing events at that rate")
say(f"- 5× Express is {fmt(target, 0)} requests/s, {100 * target / results['ceiling'][0]:.0f} % of the ceiling. "
    f"`wa-ingest` saturates both cores at {fmt(handler, 0)} requests/s (wrk included), {room}. A durable `wa dev` "
    "is held back by its one SQLite writer thread (SQLite has one writer): per event a row insert of ~680 bytes, "
    "written once to the WAL and again by the checkpoint (`vmstat`: 318 MB/s written at 19,300 requests/s, 16.5 KB "
    "per request for 5.6 KB of events), with the webhooks' tasks waiting on it. Measured apart from this run "
    "(2026-12-05, interleaved, the store-less handler at 51–53k requests/s then): with neither the flush per commit "
    "nor any checkpoint (`synchronous=OFF`, `wal_autocheckpoint=0`) it reached 26.1k, so the inserts alone cap it "
    "near half the store-less rate; checkpoints on a thread of their own made it slower (22.4k against 24.6k, medians of 3), the "
    "rollback journal too (12.4k against 20.5k for the WAL). Not even an append-only file in place of SQLite reached "
    "5× Express: through the same writer thread, 27.5–30.4k requests/s with a flush per commit (33.5–34.6k with "
    "none) against Express at 8.4–8.9k; appended by each request on its own thread, with one flush shared by all "
    "that wait (the leanest durable store measured), 27.4–31.1k against Express at 8.2–8.8k, in interleaved rounds "
    "with the current server: 3.1–3.8×. A flush here takes 0.3–0.7 ms (`dd oflag=dsync`), and the 32 connections "
    "wait on it; with 128 connections (larger shared flushes) that store reached 35.3–35.7k against Express at "
    "7.9–8.0k: 4.4–4.5×. And 25× pywa is within a tenth of the store-less handler's own rate: no store that writes "
    "5.6 KB per request and flushes it fits in what is left. "
    "A durable `wa dev` cannot reach 5× Express on this machine; in AWS the same handler hands its events to SQS "
    "instead.")
say("")

say("## 4. Sender pacing")
say("")
p = json.loads((out / "pacing.json").read_text())
say(f"{p['sends']} sends queued at once over {p['numbers']} business numbers; the simulator allows {p['limit_per_number']} "
    f"messages/s per number with {p['latency_ms']} ms latency; the real sender handler on the local stack's FIFO queue and "
    "state (SQLite), 5 concurrent pollers (`bench/src/bin/wa-bench/pacing.rs`).")
say("")
say("| number | accepted | achieved rate (msg/s) | % of limit | busiest 1-s window |")
say("|---|---:|---:|---:|---:|")
for number, n in p["per_number"].items():
    say(f"| {number} | {n['accepted']} | {fmt(n['rate_per_s'])} | {100 * n['rate_per_s'] / p['limit_per_number']:.1f} % | {n['busiest_1s']} |")
say("")
say(f"130429 answers: {p['throttled_130429']} of {p['graph_calls']} calls ({p['throttled_pct']:.2f} %). "
    f"p99 queue-to-accepted: {fmt(p['p99_queue_to_accepted_ms'] / 1000, 2)} s — the whole backlog was queued at once, "
    f"so this is the queue's drain time ({fmt(p['elapsed_s'], 2)} s for all). Goals: ≥ 95 % of the limit, no 1-s window "
    "above 84, ≤ 0.1 % 130429.")
say("")

say("## 5. Media fetcher: a 100 MB document")
say("")
m = json.loads((out / "media.json").read_text())
say(f"The media-fetcher release binary under the Lambda Runtime API emulator, one invocation per run ({m['runs']} runs, "
    f"medians), streaming a {m['file_mb']} MB document from the simulator's media API into the loopback stand-in's S3 "
    "multipart upload in 8 MiB parts, hashing it as it goes; each run checks that every byte reached S3 in one completed "
    "upload (`bench/src/bin/wa-bench/media.rs`).")
say("")
say("| file | time (invocation to answer) | throughput | peak RSS (VmHWM) | goal |")
say("|---:|---:|---:|---:|---|")
say(f"| {m['file_mb']} MB | {fmt(m['seconds'], 2)} s | {fmt(m['mb_per_s'])} MB/s | {fmt(m['peak_rss_mb'])} MB | peak RSS ≤ 64 MB "
    f"({'met' if m['peak_rss_mb'] <= 64 else 'missed'}) |")
say("")
say("On Lambda the download comes over the internet from Meta and the parts go to S3 in the region: the loopback "
    "figure is the function's own ceiling, not what a deployment sees.")
say("")

say("## 6. Campaigns on `wa dev`")
say("")
runs = [json.loads(l) for l in (out / "campaign.jsonl").read_text().splitlines() if l.strip()]
sqs_run = json.loads((out / "campaign_sqs.json").read_text())
say("`wa campaign send`'s code and `wa dev`'s stack in one process (`bench/src/bin/wa-bench/campaign.rs`): ingest, the "
    f"processor and {runs[0]['pollers_four']} sender pollers (`--sender-concurrency`; {runs[0]['pollers_upgraded']} for the "
    "upgraded number, what 1,000/s takes with batches of 10) on SQLite, the simulator as Meta with its "
    "statuses. 1: one two-variant campaign over four numbers (`--phone-number-id` four times, rows in turn), the simulator "
    "allowing 80 messages/s per number: the wall time from the first request queued to the last accepted, against "
    "recipients / 320 s. 2: the simulator announces `THROUGHPUT_UPGRADE` for one number (Meta's signed quality webhook, "
    "through ingest and the processor); once the senders read 1,000/s for it, a campaign on that number alone (its "
    "statuses not posted: 3,000 webhooks a second into the same two cores are other functions' work in AWS). Run with each "
    "commit flushed to the disk (`wa dev`'s default) and without (`wa dev --no-flush`: a crash of the process loses "
    "nothing, a power cut may lose the last commits).")
say("")
say("| commits | run | recipients | wall | theoretical | result | goal | 130429 (goal 0) | busiest 1-s window |")
say("|---|---|---:|---:|---:|---:|---|---:|---:|")
for r in runs:
    mode = "flushed" if r["flush_every_commit"] else "not flushed"
    for label, a in [("4 numbers × 80/s, statuses posted", r["four_numbers"]),
                     ("4 numbers × 80/s, the sender alone", r["four_numbers_no_statuses"])]:
        pct = a["wall_pct_of_theoretical"]
        busiest = max(n["busiest_1s"] for n in a["per_number"].values())
        say(f"| {mode} | {label} | {a['recipients']:,} | {fmt(a['wall_s'])} s | {fmt(a['theoretical_s'])} s | "
            f"{fmt(pct)} % of the theoretical | ≤ 105 % ({'met' if pct <= 105 else 'missed'}) | {a['throttled_130429']} | {busiest} (limit 80) |")
    b = r["upgraded"]
    pct = b["pct_of_limit"]
    say(f"| {mode} | 1 number upgraded to 1,000/s (learned {fmt(b['learned_after_s'], 2)} s after the webhook) | "
        f"{b['recipients']:,} | {fmt(b['wall_s'])} s | {fmt(b['recipients'] / 1000)} s | {fmt(b['rate_per_s'])}/s, "
        f"{fmt(pct)} % of the rate | ≥ 95 % ({'met' if pct >= 95 else 'missed'}) | {b['throttled_130429']} | {b['busiest_1s']} (limit 1,000) |")
say("")
first = runs[0]["four_numbers"]
say(f"The first campaign of each run was interrupted 50 ms into queueing (as Ctrl-C stops it) and run again: "
    f"{first['interrupted_after_queueing']:,} requests were queued by the interrupted run, and the simulator saw "
    f"{first['recipients']:,} people messaged once each, nobody twice. Its report (`wa campaign report`'s code, with the "
    "statuses in): " + "; ".join(f"variant {v['variant']}: {v['queued']:,} queued, {v['sent']:,} sent, "
    f"{v['delivered']:,} delivered, {v['read']:,} read" for v in first["report"]) + "; the funnel picture was drawn.")
say("")
for r in runs:
    t = r.get("tier_250")
    if not t:
        continue
    mode = "flushed" if r["flush_every_commit"] else "not flushed"
    say(f"TIER_250 ({mode}): Meta's quality webhook announced the tier to a fresh stack, then a two-variant campaign "
        f"of {t['recipients']:,} recipients was interrupted 50 ms into queueing and run again: {t['sent']} people "
        f"messaged, each once, {t['deferred_on_queue']:,} requests deferred on the outbound queue (none failed, "
        f"{t['dlq']} in the DLQ, {t['simulator_131048']} refusals of the simulator's own count of the limit), settled "
        f"{fmt(t['settled_s'])} s after the first request was queued; the report: "
        + "; ".join(f"variant {v['variant']}: {v['queued']:,} queued, {v['sent']} sent" for v in t["report"]) + ".")
    say("")
nf = [r for r in runs if not r["flush_every_commit"]]
thr = [x["throttled_130429"] for r in nf for x in (r["four_numbers"], r["four_numbers_no_statuses"])]
nf_pct = [x["wall_pct_of_theoretical"] for r in nf for x in (r["four_numbers"], r["four_numbers_no_statuses"])]
all_pct = [x["wall_pct_of_theoretical"] for r in runs for x in (r["four_numbers"], r["four_numbers_no_statuses"])]
all_thr = [x["throttled_130429"] for r in runs for x in (r["four_numbers"], r["four_numbers_no_statuses"])]
up = {("flushed" if r["flush_every_commit"] else "not flushed"): r["upgraded"]["pct_of_limit"] for r in runs}
say("The sender paces at 97 % of each number's rate, so 103 % of the theoretical time is the floor of the four-number "
    f"runs; they took {fmt(min(all_pct))}–{fmt(max(all_pct))} % of it with {max(all_thr)} answers of 130429, commits "
    "flushed or not. The upgraded number at 1,000/s reached "
    + ", ".join(f"{fmt(v)} % {k}" for k, v in up.items())
    + ": at that rate each send's state writes (claim, outcome, published mark, slot) and each status's, a flush of "
    "their own on one SQLite file when commits are flushed, are the local stack's limit (in AWS those writes go to "
    "DynamoDB); `wa dev --no-flush` is the way to rehearse it locally. Two changes brought the four-number runs to "
    "their goals (107–149 % and up to 699 × 130429 in the previous run): a send may now start only a little after its "
    "slot, a share of what pacing leaves over in a second (`wa_core::ratelimit::max_lateness_us`: 9.0 ms at 80/s when "
    "this table was measured, 10.3 ms as shipped, a third of that room at any rate, since the first rule left none at "
    "rates under 34/s; it was 20 ms, which left the network no room at Meta's counter), and the benchmark stopped "
    "copying the simulator's whole list "
    "of accepted requests every 10 ms to see whether it was done: the copy held the lock the simulator's send handler "
    "takes, stalled it for tens of milliseconds, and each stall released the waiting sends together "
    "(`Simulator::accepted_count`). The local stack also waits for its database off the runtime's workers now "
    "(`block_in_place`). With the shipped rule, `wa-bench campaign 20000 --no-flush` on the same machine afterwards: "
    "103.6 % and 103.3 % with 0 answers of 130429, the upgraded number 97.0 %, TIER_250 250 sent and 19,750 deferred.")
say("")
say(f"Queueing: `wa campaign send --queue-url` put {sqs_run['recipients']:,} requests on a loopback SQS stand-in that "
    f"answers at once in {fmt(sqs_run['seconds'], 2)} s: {sqs_run['requests_per_s']:,.0f} requests/s "
    f"(goal ≥ 5,000: {'met' if sqs_run['requests_per_s'] >= 5000 else 'missed'}); `SendMessageBatch` of 10, 32 in flight "
    "(`wa-bench campaign-sqs`).")
say("")

say("## 7. What a million messages cost")
say("")
cost_text = (out / "cost.md").read_text()
cost = json.loads(cost_text.split("<!--")[1].split("-->")[0])
say("The release binaries of webhook-ingest, event-processor and sender under the Lambda Runtime API emulator, against "
    "moto through the fault proxies with no faults (`tests/src/faults/cost.rs`, `wa-faults cost --items 1000`): "
    "1,000 webhooks each carrying one user's message, 1,000 each carrying one status, 1,000 template sends (every "
    "recipient new, counted against a TIER_100K messaging limit). Every AWS call is counted at the proxies, with "
    "DynamoDB's request units read from each request (one unit per strongly consistent read of an item up to 4 KB, "
    "half for an eventually consistent one, one per write up to 1 KB, two per item in a transaction) and the entries "
    "of each SQS batch; every invocation is timed from the runtime taking the event to its answer, rounded up to the "
    "millisecond as Lambda bills it. Two deployments are priced from the same run: the template's defaults "
    "(`WebhookEndpoint: HttpApi`, `EventsDelivery: Bus`), where each published event is one EventBridge `PutEvents` "
    "entry plus the bus's delivery to the events queue and each webhook one API Gateway request with its access-log "
    "line; and the lean one (`FunctionUrl`, `Queue`: Meta calls ingest's function URL, events go straight to the events "
    "queue), priced by the `SendMessageBatch` requests the harness measured. Lambda's event source mapping is priced as "
    "one `ReceiveMessage` and one `DeleteMessageBatch` per batch.")
say("")
say("Prices: us-east-1, on demand, arm64, read 2026-12-07 on AWS's pricing pages — Lambda "
    "(aws.amazon.com/lambda/pricing: $0.20 per million requests, $0.0000133334 per GB-second), API Gateway HTTP API "
    "(aws.amazon.com/api-gateway/pricing: $1.00 per million), SQS (aws.amazon.com/sqs/pricing: $0.40 per million "
    "standard, $0.50 FIFO), DynamoDB on-demand (aws.amazon.com/dynamodb/pricing/on-demand: $0.625 per million write "
    "units, $0.125 per million read units), EventBridge (aws.amazon.com/eventbridge/pricing: $1.00 per million custom "
    "events), CloudWatch Logs (aws.amazon.com/cloudwatch/pricing: $0.50 per GB ingested), Secrets Manager ($0.05 per "
    "10,000 calls). The managed service: Twilio's $0.005 per WhatsApp message, inbound or outbound, on top of Meta's "
    "fees (twilio.com/en-us/whatsapp/pricing, read 2026-12-07). Durations are moto's on loopback (a few ms a call, "
    "like DynamoDB's and SQS's in a region); free tiers are not subtracted.")
say("")
say(cost_text.split("<!--")[0].strip())
say("")
say("**Saved in this change**: a processor batch's events are forwarded together, ten to a request "
    "(`EventQueue::publish_groups`; each event still recorded forwarded only once its own messages are in), and a new "
    "user is counted against the messaging limit in two conditional writes instead of a transaction of the same two "
    "(a transaction bills each item twice: four write units became two). The sender's batch slots are reserved as far "
    "ahead as its records take to get ready, so that fewer records reserve a slot of their own. Earlier: a status's "
    "status and pricing in one `UpdateItem`, the ledger's transaction only for a message's first billable status, the "
    "processor's record and forwarded mark in one write, ingest's metric line halved.")
say("")
say("**What stays, and why.** Per event the dedupe claim and its record (two write units: the event's exactly-once "
    "downstream); in the default deployment API Gateway ($1.00 per million webhooks: throttling, access logs, and the "
    "mTLS Meta's 2026 webhooks can use) and the bus ($1.00 per million events plus the delivery: one subscription per "
    "consumer, filtered without code). Per send the idempotency claim, outcome and published mark (three write units: "
    "never send twice, exactly one outcome; the outcome must be recorded before it is published, or a crash between "
    "would send again), and under a limited tier the messaging limit's bucket and the user's record (two write units "
    "per new user; nothing at TIER_UNLIMITED or when no tier is known). A person's two ids linked once, on the first "
    "send to them (the processor would write the same two from the first status otherwise). The send-slot pointer, "
    "under moto with four senders sharing two numbers, still takes more than one write per send: reservations that "
    "lose a race with another sender retry, and a failed conditional write is billed too. Statuses are Meta's: three "
    "webhooks per message sent, each an inbound event.")
say("")
message = cost["message_per_million"]
send = cost["send_per_million"]
lean_message = cost["lean_message_per_million"]
lean_send = cost["lean_send_per_million"]
lean_with = cost["lean_send_with_statuses_per_million"]
say(f"**The goal** (under 1/1000 of $0.005: $5.00 per million): users' messages in cost ${message:.2f} in the default "
    f"deployment and ${lean_message:.2f} in the lean one — {'met' if lean_message < 5 else 'missed'} there; a send "
    f"alone ${send:.2f} and ${lean_send:.2f} — {'met' if lean_send < 5 else 'missed'} (${lean_with:.2f} with its three "
    "statuses, which Twilio does not bill). The sends' cost is their DynamoDB writes, each of them a guarantee above; "
    "what would lower it further: a campaign's producer batching its requests (already `wa campaign send`: a tenth of "
    "the $0.50 FIFO request here), and a slot pointer that one sender per number owns instead of all racing for it.")
say("")

say("## Raw output")
say("")
for name in ["criterion.txt", "sqs_cpu.json", "sqs_cpu_one_core.json", "coldstart.jsonl", *[p.name for n in names for p in wrk_files(n)], "pacing.json", "media.json", "campaign.jsonl", "campaign_sqs.json", "cost.md"]:
    text = (out / name).read_text()
    if name == "criterion.txt":
        text = "\n".join(l for l in text.splitlines() if re.match(r"^[a-z_0-9]+/|^\s+(time|thrpt):", l))
    say(f"`{name}`:")
    say("")
    say("```")
    say(text.strip())
    say("```")
    say("")
print("\n".join(lines))
