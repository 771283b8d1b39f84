#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60), or FUZZ_RUNS executions
# each when set (FUZZ_RUNS=10000000 for the documented run), with cargo fuzz on the nightly
# toolchain; `scripts/fuzz.sh SECONDS TARGET...` runs only those targets (installs cargo-fuzz
# when missing). The suite runs the same properties briefly
# on stable (proptest, core/tests/properties.rs); this is the long run. FUZZ_SANITIZER=none
# builds without AddressSanitizer (the default is `address`): four to six times the executions a
# second on the targets whose code is all safe Rust, where ASan has nothing of its own to catch.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The corpora start from the fixtures: Meta's example and 2026 webhooks, Meta's send examples as
# SendRequests, the example template.
seed() { mkdir -p "fuzz/corpus/$1"; cp -n "${@:2}" "fuzz/corpus/$1/"; }
seed split_webhook fixtures/meta/webhooks/*.json fixtures/meta2026/*.json
if [ ! -e fuzz/corpus/send_request/send-text-message.json ]; then
  mkdir -p fuzz/corpus/send_request
  python3 - <<'PY'
import json, pathlib
for path in sorted(pathlib.Path("fixtures/meta/send").glob("*.json")):
    message = json.loads(path.read_text())
    for key in ("messaging_product", "recipient_type", "to"):
        message.pop(key, None)
    request = {"phone_number_id": "106540352242922", "to": "16505551234", "message": message, "idempotency_key": path.stem}
    pathlib.Path("fuzz/corpus/send_request", path.name).write_text(json.dumps(request))
PY
fi
if [ ! -e fuzz/corpus/template_lint/order_update.json ]; then
  mkdir -p fuzz/corpus/template_lint
  python3 -c 'import json; print(json.dumps({"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"HEADER","format":"TEXT","text":"Order {{1}}","example":{"header_text":["#1"]}},{"type":"BODY","text":"Hi {{1}}, order {{2}} ships.","example":{"body_text":[["A","1"]]}},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://x.example/{{1}}","example":["1"]}]}]}))' > fuzz/corpus/template_lint/order_update.json
fi
# The envelope and the simulator's checks start from the same webhooks and sends; the SQS answers
# from the shapes SQS gives.
seed apigw_envelope fixtures/meta/webhooks/*.json fixtures/meta2026/*.json
seed simulator_request fixtures/meta/send/*.json
if [ ! -e fuzz/corpus/sqs_answer/partial.json ]; then
  mkdir -p fuzz/corpus/sqs_answer
  echo '{"Successful":[{"Id":"m0","MessageId":"x","MD5OfMessageBody":"y"}],"Failed":[{"Id":"m1","Code":"InternalError","SenderFault":false,"Message":"x"}]}' > fuzz/corpus/sqs_answer/partial.json
  echo '{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}' > fuzz/corpus/sqs_answer/error.json
fi
targets=("$@")
[ "${#targets[@]}" -gt 1 ] && targets=("${targets[@]:1}") || targets=(split_webhook send_request template_lint signature apigw_envelope sqs_answer simulator_request)
for target in "${targets[@]}"; do
  echo "==> $target, ${FUZZ_RUNS:-$seconds s}${FUZZ_RUNS:+ executions}" >&2
  mkdir -p "fuzz/corpus/$target"
  if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="$seconds"); fi
  cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "fuzz/corpus/$target" -- "${limit[@]}" -max_len=65536 -close_fd_mask=1 2>&1 \
    | grep -E "^#[0-9]+ *(DONE|pulse)|Done|ERROR|panicked|SUMMARY" | tail -3
done
echo "fuzz: every target ran ${FUZZ_RUNS:-$seconds s} ${FUZZ_RUNS:+executions} without a crash" >&2
