#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60) with cargo fuzz on the
# nightly toolchain (installs cargo-fuzz when missing). The suite runs the same properties briefly
# on stable (proptest, core/tests/properties.rs); this is the long run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in split_webhook send_request template_lint signature; do
  echo "==> $target, $seconds s" >&2
  mkdir -p "fuzz/corpus/$target"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -max_len=65536 2>&1 \
    | grep -E "^#[0-9]+ *(DONE|pulse)|Done|ERROR|panicked|SUMMARY" | tail -3
done
echo "fuzz: every target ran $seconds s without a crash" >&2
