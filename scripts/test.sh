#!/usr/bin/env bash
# The whole test suite. Installs what it needs by itself (a Python venv in .venv with moto server,
# which the end-to-end tests start on 127.0.0.1, and cfn-lint), then lints the template and runs
# every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

echo "==> cfn-lint template.yaml, and the queue/function invariants"
cfn-lint template.yaml
python scripts/check_template.py template.yaml

echo "==> cargo test --workspace (end-to-end tests start moto server on 127.0.0.1)"
rm -rf target/test-logs
cargo test --workspace --locked "$@"

if [ "$#" -eq 0 ]; then
  echo "==> no secret value in the logs the suite captured"
  python scripts/check_logs.py target/test-logs
fi
