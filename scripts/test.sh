#!/usr/bin/env bash
# The test command: starts the local stack (installing what is missing),
# checks formatting and lints, then runs every test against the stack.
#   scripts/test.sh [extra arguments for cargo nextest run]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/local-stack.sh up
eval "$(scripts/local-stack.sh env)"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
