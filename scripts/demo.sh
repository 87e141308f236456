#!/usr/bin/env bash
# The demo: mailsync's main job on the local stack, from a fresh machine.
# Starts the stack (installing what is missing), provisions the schema,
# checks it, imports the sample workbook as a demo user, then creates and
# sends a campaign, delivers it through the local stack's SMTP server and
# watches it progress live; the messages are then in the stack's web inbox.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "Starting the local stack"
scripts/local-stack.sh up
eval "$(scripts/local-stack.sh env)"

step "Building mailsync"
cargo build --quiet
BIN="${CARGO_TARGET_DIR:-target}/debug/mailsync"
mailsync() { "$BIN" "$@"; }

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

step "mailsync campaigns create / send"
CAMPAIGN="Démo $(date +%H:%M:%S)"
mailsync campaigns create --name "$CAMPAIGN" --subject "Les nouveautés de novembre pour {{organization}}" \
  --content "Bonjour {{email}}, voici les nouveautés de novembre pour {{organization}}."
mailsync campaigns send "$CAMPAIGN" --yes
scripts/mail-catcher.sh clear

# Deliver it through the local stack's SMTP server (maildev), a few emails a
# second so that the progress is visible, while the watch below shows it live.
step "mailsync campaigns deliver (in the background) and watch it live"
mailsync campaigns deliver "$CAMPAIGN" --rate 6 --concurrency 2 -q &
DELIVERER=$!
trap 'kill $DELIVERER 2>/dev/null || true' EXIT

step "mailsync campaigns watch --until-done"
mailsync campaigns watch --until-done --interval 1
wait "$DELIVERER"
trap - EXIT

step "The delivered messages"
printf 'maildev received %s message(s); read them at %s\n' \
  "$(curl -sf "$MAILSYNC_INBOX_URL/email" | grep -o '"messageId":' | wc -l)" "$MAILSYNC_INBOX_URL" >&2

step "mailsync campaigns list"
mailsync campaigns list

step "mailsync dashboard"
mailsync dashboard
