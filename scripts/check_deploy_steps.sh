#!/usr/bin/env bash
# Runs docs/deploy.md's build steps as far as this machine allows: installs cargo-lambda and
# ziglang from PyPI into a fresh venv (as the docs say: cargo lambda needs Zig to link) and builds
# one function with `cargo lambda build --release` for this machine's architecture. The arm64
# build (`--arm64`, what Lambda runs) needs the aarch64 Rust target, which this machine cannot
# download; on a developer's machine `rustup target add aarch64-unknown-linux-gnu` first.
# Not part of scripts/test.sh (a release build takes minutes); run it after changing deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check cargo-lambda ziglang
export PATH="$venv/bin:$PATH"
cargo lambda --version
cargo lambda build --release --bin "${1:-webhook-verify}"
ls -la "target/lambda/${1:-webhook-verify}/bootstrap"
echo "deploy steps: cargo-lambda and ziglang installed from PyPI, the function built"
