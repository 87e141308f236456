#!/usr/bin/env bash
# The demo: mailsync's main job on the local stack, from a fresh machine.
# Starts the stack (installing what is missing), provisions the schema,
# checks it, imports the sample workbook as a demo user, then creates and
# sends a campaign and watches it progress live while a stand-in for a
# sending service moves the emails along.
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

step "mailsync campaigns create / send"
CAMPAIGN="Démo $(date +%H:%M:%S)"
mailsync campaigns create --name "$CAMPAIGN" --subject "Les nouveautés de novembre" \
  --content "Bonjour, voici nos nouveautés."
mailsync campaigns send "$CAMPAIGN" --yes

# mailsync records and tracks campaigns; it does not deliver mail. A sending
# service would move each email along: this loop plays that part, as the
# demo user (their JWT claims, RLS applies), a few emails at a time.
advance() {
  local claims="{\"sub\":\"$DEMO_USER\",\"role\":\"authenticated\"}"
  for _ in $(seq 1 200); do
    left="$(psql -X -q -At "$SUPABASE_DB_URL" <<SQL
begin;
select set_config('request.jwt.claims', '$claims', true);
set local role authenticated;
update public.emails_sent set status = 'sent'
 where id in (select id from public.emails_sent where status = 'pending' order by recipient_email limit 4);
update public.emails_sent
   set status = case when random() < 0.06 then 'bounced' when random() < 0.06 then 'failed' else 'delivered' end,
       error_message = null
 where id in (select id from public.emails_sent where status = 'sent' order by recipient_email limit 3);
commit;
select count(*) from public.emails_sent where status in ('pending', 'sending', 'sent');
SQL
)"
    [ "${left##*$'\n'}" = 0 ] && break
    sleep 0.3
  done
}
advance > /dev/null 2>&1 &
ADVANCER=$!
trap 'kill $ADVANCER 2>/dev/null || true' EXIT

step "mailsync campaigns watch --until-done"
mailsync campaigns watch --until-done --interval 1

step "mailsync campaigns list"
mailsync campaigns list

step "mailsync dashboard"
mailsync dashboard
