#!/usr/bin/env bash
# The demo: mailsync's main job on the local stack, from a fresh machine.
# Starts the stack (installing what is missing), provisions the schema and
# checks it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "Starting the local stack"
scripts/local-stack.sh up
eval "$(scripts/local-stack.sh env)"

step "Building mailsync"
cargo build --quiet
mailsync() { target/debug/mailsync "$@"; }

step "mailsync db reset --yes"
mailsync db reset --yes

step "mailsync db verify"
mailsync db verify
