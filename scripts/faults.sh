#!/usr/bin/env bash
# The fault-injection runs at full size (RELIABILITY.md): ingest → processor, the sender and the
# secret rotation, each with its faults and process kills, against moto on 127.0.0.1 and the Cloud
# API simulator. Prints a table per run, writes them to target/fault-runs/report.md, and exits
# non-zero when a goal is not met. FAULT_ITEMS (default 10000) and FAULT_SEED (default 2026)
# change the size and the plan; `scripts/faults.sh send` runs one path.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
cargo build --locked -p webhook-ingest -p webhook-verify -p event-processor -p sender -p secret-rotation
cargo build --locked -p wa-tests --bin wa-faults
target/debug/wa-faults "${1:-all}" --items "${FAULT_ITEMS:-10000}" --seed "${FAULT_SEED:-2026}" \
  --out target/fault-runs/report.md
