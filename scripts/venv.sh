# Sourced by the other scripts: makes sure .venv has the pinned Python tools they need.
venv=.venv

# pip install with retries: one dropped connection in the middle of a large wheel should not fail
# a whole run.
venv_pip() {
  local attempt
  for attempt in 1 2 3; do
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2 && return 0
    [ "$attempt" -lt 3 ] && { echo "==> pip install failed (attempt $attempt of 3); retrying" >&2; sleep $((attempt * 5)); }
  done
  echo "==> pip install failed 3 times: $*" >&2
  return 1
}

# Installs the pins of a requirements file into .venv unless that exact file is installed already.
venv_require() {
  local marker
  marker="$venv/.installed-$(basename "$1")"
  if ! cmp -s "$1" "$marker"; then
    echo "==> installing $1 into $venv" >&2
    venv_pip -r "$1"
    cp "$1" "$marker"
  fi
}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  venv_pip --upgrade pip
fi
# The tests' tools: moto server, cfn-lint, checkov.
venv_require scripts/requirements.txt
export PATH="$PWD/$venv/bin:$PATH"
export WA_TEST_PYTHON="$PWD/$venv/bin/python"
