# Sourced by the other scripts: makes sure .venv has the pinned Python tools.
venv=.venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements.txt "$venv/.requirements"; then
  echo "==> installing tools into $venv (moto server, cfn-lint, checkov, cargo-lambda)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt >&2
  cp scripts/requirements.txt "$venv/.requirements"
fi
export PATH="$PWD/$venv/bin:$PATH"
export WA_TEST_PYTHON="$PWD/$venv/bin/python"
