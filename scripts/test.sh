#!/usr/bin/env bash
# The whole test suite. Installs what it needs by itself: a Python venv in .venv with moto server
# (the AWS emulator the end-to-end tests start on 127.0.0.1) and cfn-lint (template.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements-test.txt "$stamp"; then
  echo "==> installing test tools into $venv (moto server, cfn-lint)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$stamp"
fi
export WA_TEST_PYTHON="$PWD/$venv/bin/python"

echo "==> cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml

echo "==> cargo test (workspace, end-to-end tests against moto server on 127.0.0.1)"
cargo test --workspace --locked "$@"
