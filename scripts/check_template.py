#!/usr/bin/env python3
"""Checks template.yaml for the queue and function invariants the reliability design relies on.

- every function: provided.al2023 on arm64, built with cargo-lambda;
- every SQS event source: ReportBatchItemFailures; the queue's visibility timeout >= 6x the
  function timeout; FIFO sources take batches of at most 10;
- every queue with a DLQ: maxReceiveCount >= 5 and the DLQ keeps messages longer than its source,
  and an alarm watches the DLQ's depth;
- every checkov suppression says why, in place (a comment of at least a few words);
- every function with a statement on the state table may call every DynamoDB operation the
  state table's adapter (infra/src/dynamo.rs) makes, and Query on its indexes when it queries
  (moto does not check IAM, so a missing action would only show in AWS);
- the payload bucket's lifecycle rules are the ones the code applies locally and relies on
  (`BLOB_LIFECYCLE_DAYS` in functions/webhook-ingest/src/lib.rs), and claim-checked events outlive
  every queue's retention.
Exits non-zero with one line per broken rule.
"""
import pathlib
import re
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


def tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}


Loader.add_multi_constructor("!", tag)
template = yaml.load(open(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"), Loader=Loader)
resources = template["Resources"]
globals_ = template.get("Globals", {}).get("Function", {})
problems = []


def ref_name(value):
    if isinstance(value, dict):
        for key in ("Ref", "GetAtt"):
            if key in value:
                target = value[key]
                return target.split(".")[0] if isinstance(target, str) else target[0]
    return None


for name, resource in resources.items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    props = {**globals_, **resource.get("Properties", {})}
    if props.get("Runtime") != "provided.al2023" or props.get("Architectures") != ["arm64"]:
        problems.append(f"{name}: must run on provided.al2023 / arm64")
    if resource.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
        problems.append(f"{name}: BuildMethod must be rust-cargolambda")
    timeout = int(props.get("Timeout", 3))
    for event_name, event in props.get("Events", {}).items():
        if event["Type"] != "SQS":
            continue
        eprops = event["Properties"]
        queue_name = ref_name(eprops["Queue"])
        queue = resources[queue_name]["Properties"]
        if "ReportBatchItemFailures" not in eprops.get("FunctionResponseTypes", []):
            problems.append(f"{name}.{event_name}: needs FunctionResponseTypes [ReportBatchItemFailures]")
        if int(queue.get("VisibilityTimeout", 30)) < 6 * timeout:
            problems.append(f"{queue_name}: VisibilityTimeout must be >= 6 x {name}'s Timeout ({6 * timeout})")
        if queue.get("FifoQueue") and int(eprops.get("BatchSize", 10)) > 10:
            problems.append(f"{name}.{event_name}: FIFO batches are at most 10")

for name, resource in resources.items():
    if resource["Type"] != "AWS::SQS::Queue":
        continue
    props = resource.get("Properties", {})
    redrive = props.get("RedrivePolicy")
    if not redrive:
        continue
    if int(redrive.get("maxReceiveCount", 0)) < 5:
        problems.append(f"{name}: maxReceiveCount must be >= 5")
    dlq_name = ref_name(redrive["deadLetterTargetArn"])
    dlq = resources[dlq_name].get("Properties", {})
    if int(dlq.get("MessageRetentionPeriod", 345600)) <= int(props.get("MessageRetentionPeriod", 345600)):
        problems.append(f"{dlq_name}: must keep messages longer than {name}")
    if bool(dlq.get("FifoQueue")) != bool(props.get("FifoQueue")):
        problems.append(f"{dlq_name}: must be FIFO exactly when {name} is")
    alarmed = any(
        r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and any(ref_name(d.get("Value")) == dlq_name for d in r["Properties"].get("Dimensions", []))
        for r in resources.values()
    )
    if not alarmed:
        problems.append(f"{dlq_name}: needs an alarm on ApproximateNumberOfMessagesVisible")

for name, resource in resources.items():
    for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
        if len(str(skip.get("comment", "")).split()) < 5:
            problems.append(f"{name}: checkov skip {skip.get('id')} needs a comment saying why")

root = pathlib.Path(__file__).resolve().parent.parent
# SDK operation -> the IAM actions it needs (a transaction needs those of the writes in it: the
# adapter's transactions hold Update actions only).
OPERATIONS = {
    "get_item": ["dynamodb:GetItem"],
    "put_item": ["dynamodb:PutItem"],
    "update_item": ["dynamodb:UpdateItem"],
    "delete_item": ["dynamodb:DeleteItem"],
    "batch_get_item": ["dynamodb:BatchGetItem"],
    "query": ["dynamodb:Query"],
    "transact_write_items": ["dynamodb:UpdateItem"],
}
dynamo = (root / "infra/src/dynamo.rs").read_text()
used = {op for op in OPERATIONS if re.search(rf"\.{op}\(\)", dynamo)}
if "Update::builder" in dynamo:
    used.add("transact_write_items")
needed = sorted({action for op in used for action in OPERATIONS[op]})
for name, resource in resources.items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    statements = [
        st
        for policy in resource.get("Properties", {}).get("Policies", [])
        if isinstance(policy, dict)
        for st in policy.get("Statement", [])
    ]
    on_table = [st for st in statements if "StateTable" in str(st.get("Resource"))]
    if not on_table:
        continue
    allowed = {a for st in on_table for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    for action in needed:
        if action not in allowed:
            problems.append(f"{name}: the state table's adapter calls {action}, which its policy does not allow")
    if "query" in used and not any("/index/" in str(st.get("Resource")) for st in on_table):
        problems.append(f"{name}: the state table's adapter queries an index; allow dynamodb:Query on ${{StateTable.Arn}}/index/*")

source = (root / "functions/webhook-ingest/src/lib.rs").read_text() + (root / "core/src/event.rs").read_text()
lifecycle_code = re.search(r"BLOB_LIFECYCLE_DAYS: \[\(&str, u64\); \d+\] =\s*\[(.*?)\];", source, re.S)
prefixes = dict(re.findall(r'pub const (\w+_PREFIX): &str = "([^"]+)";', source))
expected = {
    prefixes[name]: int(days) for name, days in re.findall(r"\((\w+_PREFIX), (\d+)\)", lifecycle_code.group(1))
} if lifecycle_code else {}
if not expected:
    problems.append("BLOB_LIFECYCLE_DAYS not found in functions/webhook-ingest/src/lib.rs")
buckets = [r for r in resources.values() if r["Type"] == "AWS::S3::Bucket" and "LifecycleConfiguration" in r.get("Properties", {})]
# A rule whose days are a parameter (media/: MediaRetentionDays) is the deployer's choice.
rules = {
    rule.get("Prefix"): int(rule.get("ExpirationInDays", 0))
    for bucket in buckets
    for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    if rule.get("Status") == "Enabled" and not isinstance(rule.get("ExpirationInDays"), dict)
}
for prefix, days in expected.items():
    if rules.get(prefix) != days:
        problems.append(f"payload bucket: {prefix} must expire after {days} days (BLOB_LIFECYCLE_DAYS), not {rules.get(prefix)}")
longest_retention = max(
    (int(r.get("Properties", {}).get("MessageRetentionPeriod", 345600)) for r in resources.values() if r["Type"] == "AWS::SQS::Queue"),
    default=0,
)
claim_check_days = expected.get("claim-check/", 0)
if claim_check_days * 86400 <= longest_retention:
    problems.append(f"claim-checked events ({claim_check_days} days) must outlive every queue's retention ({longest_retention} s)")

for problem in problems:
    print(f"template.yaml: {problem}")
if problems:
    sys.exit(1)
print("template.yaml: queue and function invariants hold")
