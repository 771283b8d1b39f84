#!/usr/bin/env bash
# Every benchmark, side by side with peers, in one run on this machine; writes BENCHMARKS.md.
# Installs the peers on demand (npm: Express in bench/peers/node; pip: pywa + FastAPI + uvicorn in
# .venv-bench; wrk from the system's packages when missing; moto in .venv for the cost run).
# Measuring takes about 12 minutes on 2 cores (the campaigns and the cost run most of it); the
# release build before it about 7.3 more on a clean tree (BENCHMARKS.md says how long).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
rm -rf "$out" && mkdir -p "$out"
log() { echo "==> $*" >&2; }
start=$SECONDS
# A clean tree: nothing built, no peers installed (a fresh clone).
clean=true
{ [ -e target/release/webhook-ingest ] || [ -d .venv-bench ] || [ -d bench/peers/node/node_modules ]; } && clean=false

command -v node >/dev/null || { echo "bench: Node.js is needed for the Express peers" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; else sudo apt-get install -y -q wrk >/dev/null; fi
fi
# The peers install (mostly downloads) while the release build below keeps the cores busy, at the
# lowest CPU priority: they take what the build leaves idle and never slow it down.
log "peers: Express (npm), pywa on FastAPI/uvicorn (pip), in the background"
install_peers() {
  (cd bench/peers/node && npm ci --no-audit --no-fund --silent)
  if [ ! -x .venv-bench/bin/python ] || ! cmp -s bench/peers/python/requirements.txt .venv-bench/.requirements; then
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -q --disable-pip-version-check -r bench/peers/python/requirements.txt
    cp bench/peers/python/requirements.txt .venv-bench/.requirements
  fi
}
( renice -n 19 -p "$BASHPID" > /dev/null; install_peers ) > "$out/peers.log" 2>&1 &
peers=$!

# One release build: the Lambda functions and the `wa-bench` driver (criterion, `wa dev`'s code and
# the other drivers). The functions get exactly what `sam build` builds (the workspace's default
# members, with their own features): the tools share every crate the functions use with the same
# features, and SQLite lives in a crate of its own (infra/local). Checked below.
log "release build: the Lambda functions and the benchmark driver"
functions=()
for dir in functions/*/; do functions+=(-p "$(basename "$dir")"); done
cargo build --release --locked -p wa-core -p wa-infra "${functions[@]}" -p wa-bench
rebuilt=$(cargo build --release --locked 2>&1 | grep Compiling || true)
if [ -n "$rebuilt" ]; then
  echo "bench: the functions built with the tools differ from what \`cargo build --release\` builds:" >&2
  echo "$rebuilt" >&2; exit 1
fi
wait "$peers" || { cat "$out/peers.log" >&2; echo "bench: installing the peers failed (above)" >&2; exit 1; }

built=$SECONDS
log "1a. ingest CPU path vs floor (criterion)"
target/release/wa-bench ingest-cpu target/criterion 2>/dev/null | tee "$out/criterion.txt" | grep -E "^[a-z_0-9]+/|time:" >&2
log "1b. SQS client CPU per event"
target/release/wa-bench sqs-cpu | tee "$out/sqs_cpu.json" >&2
# Again with the client and the stand-in on one core: no cross-core wake-ups (on this VM they cost
# ~40 µs of the client's CPU per call, part of what a loopback measurement charges the client).
taskset -c 0 target/release/wa-bench sqs-cpu | tee "$out/sqs_cpu_one_core.json" >&2

log "2. cold start, memory, size"
: > "$out/coldstart.jsonl"
for fn in webhook-ingest webhook-verify sender event-processor secret-rotation token-watchdog; do
  target/release/wa-bench coldstart "$fn" "target/release/$fn" >> "$out/coldstart.jsonl"
done
target/release/wa-bench coldstart node-express-lambda node bench/peers/node/lambda.js >> "$out/coldstart.jsonl"
cat "$out/coldstart.jsonl" >&2

log "3. webhook throughput on loopback (wrk, signed 10-message payloads)"
secret=dev-app-secret
export WA_BENCH_BODY="$PWD/$out/payload-10.json"
WA_BENCH_SIGNATURE=$(target/release/wa-bench payload 10 "$WA_BENCH_BODY" "$secret"); export WA_BENCH_SIGNATURE
# Rounds, interleaved: each receiver is measured once per round, so that a change in the machine's
# state during the run (this VM's throughput moves by 10-15 %) falls on every receiver alike
# instead of on whichever one ran then; the report takes each receiver's median round.
wrk_warmup=1 wrk_seconds=2 wrk_rounds=3
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
run_wrk() { # name round port command...
  local name=$1 round=$2 port=$3; shift 3
  "$@" > "$out/$name.server.log" 2>&1 &
  local pid=$!
  wait_port "$port"
  local code
  code=$(curl -s -o /dev/null -w "%{http_code}" -X POST "http://127.0.0.1:$port/webhook" -H "content-type: application/json" \
    -H "x-hub-signature-256: $WA_BENCH_SIGNATURE" --data-binary "@$WA_BENCH_BODY")
  [ "$code" = 200 ] || { echo "bench: $name answered $code to a signed webhook" >&2; kill "$pid"; exit 1; }
  wrk -t1 -c32 -d"${wrk_warmup}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/webhook" > /dev/null
  wrk -t1 -c32 -d"${wrk_seconds}s" --latency -s bench/wrk/post.lua "http://127.0.0.1:$port/webhook" > "$out/$name.wrk.$round.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -E "Requests/sec|99%|Non-2xx" "$out/$name.wrk.$round.txt" | sed "s/^/  $name ($round): /" >&2
}
for round in $(seq 1 "$wrk_rounds"); do
  port=$(free_port)
  run_wrk ceiling "$round" "$port" target/release/wa-bench receiver empty "$port"
  port=$(free_port)
  run_wrk wa-ingest "$round" "$port" target/release/wa-bench receiver ingest "$port" "$secret"
  port=$(free_port)
  run_wrk wa-dev "$round" "$port" target/release/wa-bench dev "127.0.0.1:$port" "$out/wa-dev-data-$round"
  port=$(free_port)
  run_wrk wa-dev-pipeline "$round" "$port" target/release/wa-bench dev "127.0.0.1:$port" "$out/wa-dev-pipeline-data-$round" --pipeline
  port=$(free_port)
  run_wrk express "$round" "$port" node bench/peers/node/express_receiver.js "$port" "$secret"
  port=$(free_port)
  run_wrk pywa "$round" "$port" .venv-bench/bin/python bench/peers/python/pywa_receiver.py "$port" "$secret"
done

log "4. sender pacing (2000 sends, 4 numbers at 80/s, 50 ms latency)"
target/release/wa-bench pacing | tee "$out/pacing.json" >&2

log "5. media fetcher: a 100 MB document streamed from the simulator into S3 (multipart)"
target/release/wa-bench media target/release/media-fetcher 100 | tee "$out/media.json" >&2

log "6. campaigns on wa dev: 20,000 recipients on 4 numbers at 80/s, then one number upgraded to 1,000/s (commits flushed, then not)"
: > "$out/campaign.jsonl"
target/release/wa-bench campaign 20000 >> "$out/campaign.jsonl"
target/release/wa-bench campaign 20000 --no-flush >> "$out/campaign.jsonl"
target/release/wa-bench campaign-sqs 20000 | tee "$out/campaign_sqs.json" >&2

log "7. what a million messages cost: the release functions against moto, every AWS call counted at the proxies"
source scripts/venv.sh
cargo build --locked -p wa-tests --bin wa-faults
WA_FAULTS_BIN_DIR=target/release target/debug/wa-faults cost --items 1000 --out "$out/cost.md" > /dev/null

echo "{\"setup_and_build_s\": $((built - start)), \"measuring_s\": $((SECONDS - built)), \"clean_tree\": $clean, \"wrk_warmup_s\": $wrk_warmup, \"wrk_s\": $wrk_seconds, \"wrk_rounds\": $wrk_rounds}" > "$out/timings.json"
python3 bench/report.py "$out" > BENCHMARKS.md
log "wrote BENCHMARKS.md"
