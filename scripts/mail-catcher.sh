#!/usr/bin/env bash
# The local stack's web inbox and its SMTP server: maildev, pinned in
# scripts/mail-catcher/package-lock.json, installed from the npm registry on
# first use into the machine's cache. The stack's Postfix relays to it every
# address outside its test domains (and copies deliver.test mail to it), so
# open the inbox in a browser to read what `mailsync campaigns deliver` sent;
# its SMTP server also takes mail directly (MAILSYNC_INBOX_SMTP_URL).
#
#   scripts/mail-catcher.sh up        start it (idempotent; installs on first use)
#   scripts/mail-catcher.sh down      stop it (the caught messages go with it)
#   scripts/mail-catcher.sh status    running or not, and where
#   scripts/mail-catcher.sh env       export lines for MAILSYNC_INBOX_SMTP_URL and MAILSYNC_INBOX_URL
#   scripts/mail-catcher.sh clear     delete every caught message
#
# Ports (Supabase's local mail catcher uses the same offsets from the API port):
#   SMTP    MAILSYNC_SMTP_PORT  (default MAILSYNC_API_PORT + 4, 54325)
#   inbox   MAILSYNC_INBOX_PORT (default MAILSYNC_API_PORT + 3, 54324)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

MAILDEV_VERSION=2.2.1
CACHE_DIR="${MAILSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailsync}"
INSTALL_DIR="$CACHE_DIR/maildev-$MAILDEV_VERSION"
MAILDEV_BIN="$INSTALL_DIR/node_modules/maildev/bin/maildev"
STACK_DIR="${MAILSYNC_STACK_DIR:-$ROOT/.local-stack}"
API_PORT="${MAILSYNC_API_PORT:-54321}"
SMTP_PORT="${MAILSYNC_SMTP_PORT:-$((API_PORT + 4))}"
INBOX_PORT="${MAILSYNC_INBOX_PORT:-$((API_PORT + 3))}"
PID_FILE="$STACK_DIR/mail-catcher.pid"
LOG_FILE="$STACK_DIR/mail-catcher.log"
INBOX_URL="http://127.0.0.1:$INBOX_PORT"

log() { printf 'mail-catcher: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
pid_alive() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

# npm ci from the committed lock file: the same package tree on every machine.
# Stacks started at the same time share the cache: the install holds a lock,
# is made in a scratch directory and moved into place whole, and counts only
# once its lock file copy is there (written last), so a half-written tree is
# never taken for an install.
install() {
  local lock="$ROOT/scripts/mail-catcher/package-lock.json"
  installed() { [ -x "$MAILDEV_BIN" ] && cmp -s "$lock" "$INSTALL_DIR/package-lock.json"; }
  installed && return
  command -v npm >/dev/null || die "npm is missing (Node.js 18 or newer is needed for maildev $MAILDEV_VERSION)"
  mkdir -p "$CACHE_DIR"
  exec 9>"$INSTALL_DIR.lock"
  flock 9
  if ! installed; then
    log "installing maildev $MAILDEV_VERSION into $INSTALL_DIR (once per machine)"
    local scratch="$INSTALL_DIR.partial.$$"
    rm -rf "$scratch" && mkdir -p "$scratch"
    cp "$ROOT/scripts/mail-catcher/package.json" "$scratch/"
    cp "$lock" "$scratch/package-lock.json"
    (cd "$scratch" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null) \
      || { rm -rf "$scratch"; die "npm ci failed in $scratch"; }
    rm -rf "$INSTALL_DIR"
    mv "$scratch" "$INSTALL_DIR"
  fi
  flock -u 9
  exec 9>&-
}

wait_ready() {
  local i
  for i in $(seq 1 100); do
    if curl -sf -o /dev/null "$INBOX_URL/email" && (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; then
      return 0
    fi
    pid_alive || { tail -n 20 "$LOG_FILE" >&2 || true; die "maildev exited"; }
    sleep 0.1
  done
  tail -n 20 "$LOG_FILE" >&2 || true
  die "maildev did not answer on 127.0.0.1:$SMTP_PORT / $INBOX_URL"
}

cmd_up() {
  install
  mkdir -p "$STACK_DIR"
  if pid_alive; then
    log "already running: SMTP 127.0.0.1:$SMTP_PORT, inbox $INBOX_URL"
    return
  fi
  log "starting maildev $MAILDEV_VERSION: SMTP 127.0.0.1:$SMTP_PORT, inbox $INBOX_URL"
  nohup node "$MAILDEV_BIN" --ip 127.0.0.1 --web-ip 127.0.0.1 \
    --smtp "$SMTP_PORT" --web "$INBOX_PORT" --silent \
    > "$LOG_FILE" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
  wait_ready
}

cmd_down() {
  local i
  if pid_alive; then
    kill "$(cat "$PID_FILE")" 2>/dev/null || true
    for i in $(seq 1 50); do pid_alive || break; sleep 0.1; done
    pid_alive && kill -9 "$(cat "$PID_FILE")" 2>/dev/null || true
    log "stopped maildev"
  fi
  rm -f "$PID_FILE"
}

cmd_status() {
  if pid_alive; then
    echo "smtp      running  127.0.0.1:$SMTP_PORT (inbox $INBOX_URL)"
  else
    echo "smtp      stopped"
    return 1
  fi
}

cmd_env() {
  cat <<ENV
export MAILSYNC_INBOX_SMTP_URL='smtp://127.0.0.1:$SMTP_PORT'
export MAILSYNC_INBOX_URL='$INBOX_URL'
ENV
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clear) curl -sf -X DELETE -o /dev/null "$INBOX_URL/email/all" || die "the inbox at $INBOX_URL did not answer" ;;
  install) install ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
