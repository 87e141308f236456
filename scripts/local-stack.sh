#!/usr/bin/env bash
# The local stack: a stand-in for `supabase start`, built from real parts.
#   PostgreSQL (Debian's binaries, a throwaway cluster) on 127.0.0.1:54322
#   postrust 3.1.0 (PostgREST-compatible) behind nginx at http://127.0.0.1:54321/rest/v1
#
#   scripts/local-stack.sh up        start it (idempotent; installs what is missing)
#   scripts/local-stack.sh down      stop it (the cluster's files are kept)
#   scripts/local-stack.sh status    what is running
#   scripts/local-stack.sh env       export lines for SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_DB_URL
#                                    (and MAILSYNC_SMTP_URL, MAILSYNC_INBOX_URL: scripts/mail-catcher.sh)
#   scripts/local-stack.sh token UUID [EMAIL]
#                                    a one-hour JWT for that user (creates the user if missing)
#   scripts/local-stack.sh destroy   stop it and delete the cluster
#
# Overrides (to run several stacks side by side): MAILSYNC_STACK_DIR,
# MAILSYNC_API_PORT (54321), MAILSYNC_DB_PORT (54322), MAILSYNC_REST_PORT (API+10).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

POSTRUST_VERSION=3.1.0
CACHE_DIR="${MAILSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailsync}"
POSTRUST_BIN="$CACHE_DIR/postrust-$POSTRUST_VERSION/bin/postrust"

STACK_DIR="${MAILSYNC_STACK_DIR:-$ROOT/.local-stack}"
API_PORT="${MAILSYNC_API_PORT:-54321}"
DB_PORT="${MAILSYNC_DB_PORT:-54322}"
REST_PORT="${MAILSYNC_REST_PORT:-$((API_PORT + 10))}"

# Supabase's local-development conventions (documented, not secret).
JWT_SECRET="super-secret-jwt-token-with-at-least-32-characters-long"
ANON_KEY="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
DB_PASSWORD=postgres
DB_URL="postgresql://postgres:$DB_PASSWORD@127.0.0.1:$DB_PORT/postgres"
API_URL="http://127.0.0.1:$API_PORT"

log() { printf 'local-stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  done
  return 1
}

# initdb and postgres refuse to run as root: run them as the postgres OS user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Where the cluster lives: inside the stack directory when its OS user can
# reach it, otherwise in a directory of its own under /var/tmp.
pg_dir() {
  if [ -f "$STACK_DIR/pgdir" ]; then cat "$STACK_DIR/pgdir"; return; fi
  local dir="$STACK_DIR/pg"
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$dir" && chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
      rmdir "$dir" 2>/dev/null || true
      dir="/var/tmp/mailsync-stack-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-12)"
      mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
    fi
  fi
  echo "$dir" > "$STACK_DIR/pgdir"
  echo "$dir"
}

psql_admin() {
  PGPASSWORD="$DB_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DB_PORT" -U postgres -d postgres "$@"
}

pg_running() {
  local dir; dir="$(pg_dir)"
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

start_postgres() {
  local bindir dir
  bindir="$(pg_bindir)" || die "PostgreSQL server binaries are missing; run scripts/setup.sh"
  dir="$(pg_dir)"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "creating the cluster in $dir/data"
    local pwfile="$dir/pwfile"
    printf '%s\n' "$DB_PASSWORD" > "$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    cat >> "$dir/data/postgresql.conf" <<CONF
# mailsync local stack: throwaway data, speed over durability
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
CONF
  fi
  if pg_running; then
    log "PostgreSQL already running on 127.0.0.1:$DB_PORT"
  else
    log "starting PostgreSQL on 127.0.0.1:$DB_PORT"
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $DB_PORT" start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  if [ "$(psql_admin -tAc "select to_regnamespace('auth') is not null and exists (select 1 from pg_roles where rolname = 'authenticator')")" != t ]; then
    log "loading sql/local/supabase-compat.sql"
    psql_admin -f "$ROOT/sql/local/supabase-compat.sql" >/dev/null
  fi
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_postrust() {
  [ -x "$POSTRUST_BIN" ] || die "postrust $POSTRUST_VERSION is not installed; run scripts/setup.sh"
  if pid_alive "$STACK_DIR/postrust.pid"; then
    log "postrust already running on 127.0.0.1:$REST_PORT"
    return
  fi
  log "starting postrust $POSTRUST_VERSION on 127.0.0.1:$REST_PORT"
  DATABASE_URL="postgresql://authenticator:$DB_PASSWORD@127.0.0.1:$DB_PORT/postgres" \
  PGRST_DB_ANON_ROLE=anon \
  PGRST_DB_SCHEMAS=public \
  PGRST_JWT_SECRET="$JWT_SECRET" \
  PGRST_SERVER_HOST=127.0.0.1 \
  PGRST_SERVER_PORT="$REST_PORT" \
  PGRST_COMPAT_MODE=true \
  PGRST_DB_CHANNEL_ENABLED=true \
  PGRST_DB_MAX_ROWS=1000 \
  PGRST_DB_POOL=20 \
  PGRST_MAX_BODY_SIZE=$((64 * 1024 * 1024)) \
  PGRST_LOG_LEVEL=warn \
    nohup "$POSTRUST_BIN" > "$STACK_DIR/postrust.log" 2>&1 < /dev/null &
  echo $! > "$STACK_DIR/postrust.pid"
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

start_nginx() {
  if pid_alive "$STACK_DIR/nginx/nginx.pid"; then
    log "nginx already running on 127.0.0.1:$API_PORT"
    return
  fi
  [ -x "$(nginx_bin)" ] || die "nginx is not installed; run scripts/setup.sh"
  local n="$STACK_DIR/nginx"
  mkdir -p "$n/tmp"
  chmod 1777 "$n/tmp"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user nobody nogroup;"
  cat > "$n/nginx.conf" <<CONF
# Generated by scripts/local-stack.sh: the Supabase URL layout.
$user_line
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_buffer_size 4m;
  client_body_temp_path $n/tmp/body;
  proxy_temp_path $n/tmp/proxy;
  fastcgi_temp_path $n/tmp/fastcgi;
  uwsgi_temp_path $n/tmp/uwsgi;
  scgi_temp_path $n/tmp/scgi;
  upstream rest { server 127.0.0.1:$REST_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$API_PORT;
    default_type application/json;
    location /rest/v1/ {
      proxy_pass http://rest/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
    location /auth/v1/ {
      return 404 '{"message":"the local stack has no Auth server; use scripts/local-stack.sh token UUID"}';
    }
    location /realtime/v1/ {
      return 404 '{"message":"the local stack has no Realtime server"}';
    }
    location / {
      return 404 '{"message":"not found"}';
    }
  }
}
CONF
  log "starting nginx on 127.0.0.1:$API_PORT"
  "$(nginx_bin)" -e "$n/error.log" -p "$n" -c "$n/nginx.conf" || die "nginx did not start (see $n/error.log)"
}

wait_rest() {
  local i code
  for i in $(seq 1 150); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $ANON_KEY" "$API_URL/rest/v1/" || true)"
    case "$code" in 2*|3*|4*) return 0 ;; esac
    if ! pid_alive "$STACK_DIR/postrust.pid"; then
      tail -n 20 "$STACK_DIR/postrust.log" >&2 || true
      die "postrust exited"
    fi
    sleep 0.2
  done
  tail -n 20 "$STACK_DIR/postrust.log" >&2 || true
  die "the REST API did not answer at $API_URL/rest/v1/"
}

cmd_up() {
  if ! pg_bindir >/dev/null || [ ! -x "$POSTRUST_BIN" ] || ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
    "$ROOT/scripts/setup.sh"
  fi
  mkdir -p "$STACK_DIR"
  start_postgres
  start_postrust
  start_nginx
  wait_rest
  "$ROOT/scripts/mail-catcher.sh" up
  log "ready: API $API_URL, database 127.0.0.1:$DB_PORT"
}

stop_pidfile() {
  local f="$1" name="$2" i
  if pid_alive "$f"; then
    kill "$(cat "$f")" 2>/dev/null || true
    for i in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
    pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$f"
}

cmd_down() {
  [ -d "$STACK_DIR" ] || { log "not running"; return 0; }
  "$ROOT/scripts/mail-catcher.sh" down
  stop_pidfile "$STACK_DIR/nginx/nginx.pid" nginx
  stop_pidfile "$STACK_DIR/postrust.pid" postrust
  if pg_bindir >/dev/null && pg_running; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$(pg_dir)/data" -m fast -w stop >/dev/null
    log "stopped PostgreSQL"
  fi
}

cmd_destroy() {
  cmd_down
  if [ -d "$STACK_DIR" ]; then
    local dir; dir="$(pg_dir)"
    rm -rf "$dir" "$STACK_DIR"
    log "deleted $STACK_DIR"
  fi
}

cmd_status() {
  local ok=0
  mkdir -p "$STACK_DIR"
  if pg_bindir >/dev/null && pg_running; then echo "postgres  running  127.0.0.1:$DB_PORT"; else echo "postgres  stopped"; ok=1; fi
  if pid_alive "$STACK_DIR/postrust.pid"; then echo "postrust  running  127.0.0.1:$REST_PORT"; else echo "postrust  stopped"; ok=1; fi
  if pid_alive "$STACK_DIR/nginx/nginx.pid"; then echo "api       running  $API_URL"; else echo "api       stopped"; ok=1; fi
  "$ROOT/scripts/mail-catcher.sh" status || ok=1
  return $ok
}

cmd_env() {
  cat <<ENV
export SUPABASE_URL='$API_URL'
export SUPABASE_ANON_KEY='$ANON_KEY'
export SUPABASE_DB_URL='$DB_URL'
export MAILSYNC_LOCAL_JWT_SECRET='$JWT_SECRET'
ENV
  "$ROOT/scripts/mail-catcher.sh" env
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

cmd_token() {
  local sub="${1:-}" email="${2:-}"
  [[ "$sub" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] \
    || die "usage: scripts/local-stack.sh token UUID [EMAIL]"
  sub="$(printf '%s' "$sub" | tr 'A-F' 'a-f')"
  [ -n "$email" ] || email="user-${sub:0:8}@example.test"
  psql_admin -v id="$sub" -v email="$email" >/dev/null <<'SQL'
insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
values (:'id', 'authenticated', 'authenticated', :'email', now(), '{"provider":"email","providers":["email"]}', '{}')
on conflict (id) do nothing;
SQL
  local now exp header payload sig
  now="$(date +%s)"; exp=$((now + 3600))
  header="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)"
  payload="$(printf '{"aud":"authenticated","exp":%d,"iat":%d,"iss":"%s/auth/v1","sub":"%s","email":"%s","role":"authenticated","aal":"aal1","session_id":"%s","is_anonymous":false}' \
    "$exp" "$now" "$API_URL" "$sub" "$email" "$(cat /proc/sys/kernel/random/uuid)" | b64url)"
  sig="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)"
  printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  destroy) cmd_destroy ;;
  status) cmd_status ;;
  env) cmd_env ;;
  token) shift; cmd_token "$@" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
