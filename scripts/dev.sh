#!/usr/bin/env bash
# Runs the webhook path on this machine with no AWS account: moto server stands in for SQS, S3 and
# Secrets Manager on 127.0.0.1, and `cargo lambda watch` runs webhook-verify and webhook-ingest
# behind a local HTTP endpoint (reloading on code changes). It then verifies the webhook, posts
# Meta's 16 example payloads signed with the development secret, and shows the events on the
# queue. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
venv_require scripts/requirements-dev.txt

moto_port=${WA_DEV_MOTO_PORT:-4566}
lambda_port=${WA_DEV_PORT:-9000}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_for_port() {
  for _ in $(seq 1 "$2"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 1
  done
  echo "nothing listens on 127.0.0.1:$1 after $2 s" >&2
  return 1
}

echo "==> moto server (SQS, S3, Secrets Manager) on 127.0.0.1:$moto_port"
moto_server -H 127.0.0.1 -p "$moto_port" >.dev-moto.log 2>&1 &
pids+=($!)
wait_for_port "$moto_port" 60
python scripts/local_aws.py "http://127.0.0.1:$moto_port" >.dev.env
set -a; source .dev.env; set +a

echo "==> cargo lambda watch on 127.0.0.1:$lambda_port (first build takes a few minutes)"
cargo lambda watch -A 127.0.0.1 -P "$lambda_port" --env-file .dev.env &
pids+=($!)
wait_for_port "$lambda_port" 900

base="http://127.0.0.1:$lambda_port/lambda-url"
echo
echo "==> GET  $base/webhook-verify/webhook (verification handshake)"
curl -sS --max-time 600 -w '  -> %{http_code}\n' \
  "$base/webhook-verify/webhook?hub.mode=subscribe&hub.verify_token=dev-verify-token&hub.challenge=1158201444"
echo "==> POST $base/webhook-ingest/webhook (Meta's 16 example payloads, signed)"
python scripts/post_webhook.py "$base/webhook-ingest/webhook" fixtures/meta/webhooks/*.json
echo "==> events on the inbound queue"
python - "$INBOUND_QUEUE_URL" "http://127.0.0.1:$moto_port" <<'PY'
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[2], region_name="us-east-1", aws_access_key_id="dev", aws_secret_access_key="dev")
count = 0
while True:
    messages = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    if not messages:
        break
    for m in messages:
        e = json.loads(m["Body"])
        count += 1
        print(f"  {e['kind']:8} {e['field']:26} {e['event_id'][:48]}")
        sqs.delete_message(QueueUrl=sys.argv[1], ReceiptHandle=m["ReceiptHandle"])
print(f"  {count} events")
PY
cat <<TXT

The webhook path is running. Try:
  python3 scripts/post_webhook.py $base/webhook-ingest/webhook fixtures/meta/webhooks/text-message.json
  (the environment the functions see is in .dev.env; moto's log is .dev-moto.log)
Ctrl-C to stop.
TXT
wait
