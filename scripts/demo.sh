#!/usr/bin/env bash
# The demo: mailsync's main job on the local stack, from a fresh machine.
# Starts the stack (installing what is missing), provisions the schema,
# checks it, and imports the sample workbook as a demo user.
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

# A demo user: on the local stack a token comes from the stack's script; on
# a real project it comes from `mailsync login`.
DEMO_USER=00000000-0000-4000-8000-000000000001
MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token "$DEMO_USER" demo@example.test)"
export MAILSYNC_ACCESS_TOKEN

step "mailsync import examples/contacts.xlsx"
mailsync import examples/contacts.xlsx --rejects "${TMPDIR:-/tmp}/mailsync-demo-rejects.csv"

step "mailsync import examples/contacts.xlsx (again: nothing changes)"
mailsync import examples/contacts.xlsx

step "mailsync contacts list --limit 10"
mailsync contacts list --limit 10
