#!/usr/bin/env python3
"""Signs webhook payload files with the development app secret and POSTs them, like Meta does.

    python3 scripts/post_webhook.py URL FILE [FILE ...]

Prints the HTTP status of each POST. The signature is HMAC-SHA256 over the file's exact bytes.
"""
import hashlib
import hmac
import os
import sys
import urllib.error
import urllib.request

url, files = sys.argv[1], sys.argv[2:]
secret = os.environ.get("WA_APP_SECRET", "dev-app-secret").encode()
for path in files:
    body = open(path, "rb").read()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json", "x-hub-signature-256": signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    print(f"POST {os.path.basename(path)} -> {status}")
