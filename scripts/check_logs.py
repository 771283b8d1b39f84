#!/usr/bin/env python3
"""Fails when a secret value noted by the tests appears in the logs they captured.

The test harness writes the logs of the code under test to target/test-logs/*.jsonl and every
secret value it creates or receives (app secrets, verify tokens, access tokens, rotated tokens) to
target/test-logs/secrets.txt. Values shorter than 8 characters are too common to check.
"""
import pathlib
import sys

MIN_LENGTH = 8


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/test-logs")
    secrets_file = root / "secrets.txt"
    if not secrets_file.exists():
        print(f"check_logs: {secrets_file} is missing: the tests noted no secret", file=sys.stderr)
        return 1
    secrets = {line.rstrip("\n") for line in secrets_file.read_text().splitlines()}
    secrets = {s for s in secrets if len(s) >= MIN_LENGTH}
    logs = sorted(root.glob("*.jsonl"))
    lines = 0
    leaks = []
    for path in logs:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            lines += 1
            for secret in secrets:
                if secret in line:
                    leaks.append(f"{path.name}:{number}: a secret value ({len(secret)} characters) appears")
    if lines < 100 or len(secrets) < 5:
        print(f"check_logs: only {lines} log lines and {len(secrets)} secrets: the capture is broken", file=sys.stderr)
        return 1
    if leaks:
        print("check_logs: secret values in the logs:", file=sys.stderr)
        for leak in leaks[:20]:
            print("  " + leak, file=sys.stderr)
        return 1
    print(f"check_logs: {lines} log lines in {len(logs)} files, {len(secrets)} secret values: none logged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
