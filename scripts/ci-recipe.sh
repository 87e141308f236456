#!/usr/bin/env bash
# The CI recipe of docs/ci.md, step for step: provision a project, check it,
# import contacts strictly, and keep every `--json` result as an artifact.
#
#   scripts/ci-recipe.sh CONTACTS_FILE [ARTIFACTS_DIR]     (default: ./mailsync-artifacts)
#
# Settings come from the environment, as in a CI job: SUPABASE_URL,
# SUPABASE_ANON_KEY, SUPABASE_DB_URL, and the user to import as, either
# MAILSYNC_ACCESS_TOKEN or MAILSYNC_CI_EMAIL + MAILSYNC_CI_PASSWORD (signed in
# with `mailsync login --password-stdin`). MAILSYNC names the binary
# (default: mailsync on PATH).
#
# Exits with the code of the first step that failed (mailsync's exit codes:
# 1 failure, 2 usage, 3 configuration/authentication, 4 check failed: schema
# drift or rejected rows), after writing that step's JSON and, for the
# import, the rejected rows.
#
# On the local stack (run by tests/it/ci_recipe.rs in CI, so the recipe cannot rot):
#   eval "$(scripts/local-stack.sh env)"
#   MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token "$(cat /proc/sys/kernel/random/uuid)")" \
#     scripts/ci-recipe.sh examples/contacts.csv
set -uo pipefail

CONTACTS="${1:?usage: scripts/ci-recipe.sh CONTACTS_FILE [ARTIFACTS_DIR]}"
ARTIFACTS="${2:-mailsync-artifacts}"
MAILSYNC="${MAILSYNC:-mailsync}"
mkdir -p "$ARTIFACTS"

# Runs one step: its JSON on stdout goes to ARTIFACTS/NAME.json, its
# messages to the log; stops the recipe with the step's exit code.
step() {
  local name="$1"; shift
  echo "== $name: mailsync $*" >&2
  "$MAILSYNC" --json "$@" > "$ARTIFACTS/$name.json"
  local code=$?
  echo "$name $code" >> "$ARTIFACTS/exit-codes.txt"
  if [ "$code" -ne 0 ]; then
    echo "!! $name failed with exit code $code (see $ARTIFACTS/$name.json)" >&2
    exit "$code"
  fi
}

: > "$ARTIFACTS/exit-codes.txt"

# 0. The user the import acts as (RLS applies to it; never the service role).
if [ -z "${MAILSYNC_ACCESS_TOKEN:-}" ]; then
  : "${MAILSYNC_CI_EMAIL:?set MAILSYNC_ACCESS_TOKEN, or MAILSYNC_CI_EMAIL and MAILSYNC_CI_PASSWORD}"
  : "${MAILSYNC_CI_PASSWORD:?set MAILSYNC_CI_PASSWORD}"
  export MAILSYNC_CONFIG_DIR="${MAILSYNC_CONFIG_DIR:-$(mktemp -d)}"
  printf '%s\n' "$MAILSYNC_CI_PASSWORD" | step login login --email "$MAILSYNC_CI_EMAIL" --password-stdin
fi

# 1. Provision: idempotent, keeps every row; no prompt in CI.
step db-apply db apply --yes
# 2. Check: RLS, policies, grants, views; exit 4 on drift.
step db-verify db verify
# 3. Import: all or nothing (--strict: exit 4 and nothing written when a
#    row is bad), the bad rows kept for a person to fix.
step import import "$CONTACTS" --strict --rejects "$ARTIFACTS/rejects.csv"
# 4. What the project holds now.
step dashboard dashboard

echo "== done: artifacts in $ARTIFACTS" >&2
