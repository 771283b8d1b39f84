#!/usr/bin/env python3
"""Creates the stack's AWS resources on a local emulator and prints the functions' environment.

    python3 scripts/local_aws.py http://127.0.0.1:4566 > .dev.env

Resources: the inbound queue (with its DLQ), the payload bucket, and the app secret with
development values (app secret `dev-app-secret`, verify token `dev-verify-token`).
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="dev", aws_secret_access_key="dev", region_name="us-east-1")
sqs = session.client("sqs", endpoint_url=endpoint)
s3 = session.client("s3", endpoint_url=endpoint)
sm = session.client("secretsmanager", endpoint_url=endpoint)

dlq = sqs.create_queue(QueueName="wa-inbound-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
inbound = sqs.create_queue(
    QueueName="wa-inbound",
    Attributes={
        "MaximumMessageSize": "1048576",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    },
)["QueueUrl"]
s3.create_bucket(Bucket="wa-payloads")
secret = json.dumps(
    {"app_id": "dev-app", "app_secret": "dev-app-secret", "verify_token": "dev-verify-token", "access_token": "dev-access-token"}
)
try:
    sm.create_secret(Name="wa/whatsapp", SecretString=secret)
except sm.exceptions.ResourceExistsException:
    sm.put_secret_value(SecretId="wa/whatsapp", SecretString=secret)

print(f"AWS_ENDPOINT_URL={endpoint}")
print("AWS_REGION=us-east-1")
print("AWS_ACCESS_KEY_ID=dev")
print("AWS_SECRET_ACCESS_KEY=dev")
print("WHATSAPP_SECRET_ID=wa/whatsapp")
print(f"INBOUND_QUEUE_URL={inbound}")
print("INBOUND_MAX_MESSAGE_BYTES=1048576")
# Any age: `wa replay` sends Meta's examples, dated 2025 (the function's default drops events older than 8 days).
print("WEBHOOK_MAX_AGE_DAYS=0")
print("PAYLOAD_BUCKET=wa-payloads")
