#!/usr/bin/env bash
# The demo: mailsync's main job on the local stack, from a fresh machine.
# Starts the stack (installing what is missing), provisions the schema,
# checks it, imports the sample workbook as a demo user, then creates and
# sends a campaign, delivers it through the local stack's mail relay
# (Postfix, asking for delivery reports) and watches it progress live; the
# messages are then in the stack's web inbox. Last, `bounces fetch` reads
# the reports the relay sent back to the return path's mailbox (Dovecot):
# the campaign ends with the delivered and bounced counts the mail system
# reported.
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

# Delivery reports need the stack's mail servers (Postfix and Dovecot run
# only as root); without them the demo delivers to the web inbox alone.
TRACKING="${MAILSYNC_BOUNCES_URL:+yes}"
if [ -n "$TRACKING" ]; then
  # The reports of earlier runs name emails the reset deleted: empty the
  # return path's mailbox (IMAP, as mail-catcher.sh clears the web inbox).
  curl -sf "$MAILSYNC_BOUNCES_URL" -X 'STORE 1:* +FLAGS.SILENT (\Deleted)' >/dev/null 2>&1 || true
  curl -sf "$MAILSYNC_BOUNCES_URL" -X 'EXPUNGE' >/dev/null 2>&1 || true
fi

# A demo user: on the local stack a token comes from the stack's script; on
# a real project it comes from `mailsync login`.
DEMO_USER=00000000-0000-4000-8000-000000000001
MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token "$DEMO_USER" demo@example.test)"
export MAILSYNC_ACCESS_TOKEN

step "mailsync import examples/contacts.xlsx"
mailsync import examples/contacts.xlsx --rejects "${TMPDIR:-/tmp}/mailsync-demo-rejects.csv"

step "mailsync import examples/contacts.xlsx (again: nothing changes)"
mailsync import examples/contacts.xlsx

# A few addresses of the relay's test domains: deliver.test has mailboxes
# (the relay delivers and reports `delivered`), nouser.test has none (the
# relay accepts, then bounces with a 5.1.1 report).
DELIVERED=3 BOUNCED=2
if [ -n "$TRACKING" ]; then
  step "mailsync import: addresses the local mail system delivers or bounces"
  TRACKED_CSV="${TMPDIR:-/tmp}/mailsync-demo-tracked.csv"
  printf '%s\n' 'Organisation,Adresse email' \
    'Livraisons Démo,ana@deliver.test' 'Livraisons Démo,bruno@deliver.test' \
    'Livraisons Démo,chloe@deliver.test' \
    'Adresses perdues,personne@nouser.test' 'Adresses perdues,ancien@nouser.test' >"$TRACKED_CSV"
  mailsync import "$TRACKED_CSV" -q
  printf '%s addresses at deliver.test, %s at nouser.test\n' "$DELIVERED" "$BOUNCED" >&2
fi

step "mailsync contacts list --limit 10"
mailsync contacts list --limit 10

step "mailsync campaigns create / send"
CAMPAIGN="Démo $(date +%H:%M:%S)"
mailsync campaigns create --name "$CAMPAIGN" --subject "Les nouveautés de novembre pour {{organization}}" \
  --content "Bonjour {{email}}, voici les nouveautés de novembre pour {{organization}}."
mailsync campaigns send "$CAMPAIGN" --yes
scripts/mail-catcher.sh clear

# Deliver it through the local stack's relay (Postfix, which offers DSN: each
# email asks for a report), a few emails a second so that the progress is
# visible, while the watch below shows it live.
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

# The relay's reports come back to the return path's mailbox within seconds:
# read them until the campaign counts every deliver.test address delivered
# and every nouser.test one bounced. The other addresses were relayed to the
# web inbox: their reports say `relayed`, which is not `delivered`.
if [ -z "$TRACKING" ]; then
  printf 'The local stack runs without its mail servers (they need root): no delivery reports to read.\n' >&2
else
  count() { mailsync --json campaigns list | grep -o "\"$1_count\":[0-9]*" | head -1 | cut -d: -f2; }
  step "mailsync bounces fetch (until the reports are in)"
  FETCH_LOG="${TMPDIR:-/tmp}/mailsync-demo-fetch.txt"
  : >"$FETCH_LOG"
  for _ in $(seq 30); do
    mailsync bounces fetch >>"$FETCH_LOG"
    if [ "$(count delivered)" -ge "$DELIVERED" ] && [ "$(count bounced)" -ge "$BOUNCED" ]; then
      break
    fi
    sleep 1
  done
  grep -E '@(deliver|nouser)\.test' "$FETCH_LOG" || true
  printf '(and %s report(s) "relayed", for the addresses relayed to the web inbox; all of them in %s)\n' \
    "$(grep -c ' relayed ' "$FETCH_LOG" || true)" "$FETCH_LOG"
fi

step "mailsync campaigns watch --once"
mailsync campaigns watch --once
