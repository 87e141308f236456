#!/usr/bin/env bash
# The local stack: a stand-in for `supabase start`, built from real parts.
#   PostgreSQL (Debian's binaries, a throwaway cluster) on 127.0.0.1:54322
#   PgBouncer in transaction mode (Supavisor's 6543 on hosted) on 127.0.0.1:54329
#   postrust 3.1.0 (PostgREST-compatible) behind nginx at http://127.0.0.1:54321/rest/v1
#   the same REST API with a row cap of 100 at http://127.0.0.1:54328/rest/v1
#   maildev, the web inbox, on http://127.0.0.1:54324 (its SMTP on 54325)
#   Postfix, the mail relay (DSN, PIPELINING), on 127.0.0.1:54326
#   Dovecot, IMAP over the return path's mailbox (bounces@mailsync.test), on 127.0.0.1:54327
# The relay delivers deliver.test itself (reports say `delivered`; a copy
# goes to the web inbox), accepts then bounces nouser.test (5.1.1), defers
# later.test (a `delayed` report within seconds; it fails after 5 minutes),
# and relays every other domain to the web inbox. Reports go to the return
# path's mailbox (VERP bounces+TOKEN@mailsync.test lands there too). The
# mail servers need root; for another user the stack runs without them.
#
# It models hosted Supabase's limits: statement timeouts (anon 3 s,
# authenticated and authenticator 8 s, 2 minutes for every other role), the
# supabase_auth_admin role Auth deletes users as, a transaction-mode pooler,
# a REST row cap of 1000, and query strings read as PostgREST reads them.
#
#   scripts/local-stack.sh up        start it (idempotent; installs what is missing)
#   scripts/local-stack.sh down      stop it (the cluster's files are kept)
#   scripts/local-stack.sh status    what is running
#   scripts/local-stack.sh env       export lines for SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_DB_URL,
#                                    SUPABASE_POOLER_URL, MAILSYNC_CAPPED_URL,
#                                    MAILSYNC_SMTP_URL (the relay), MAILSYNC_RETURN_PATH,
#                                    MAILSYNC_BOUNCES_URL (imap://bounces:PASSWORD@...:PORT/INBOX),
#                                    MAILSYNC_RELAY_CA_FILE (the authority of the relay's STARTTLS
#                                    certificate, for MAILSYNC_SMTP_CA_FILE),
#                                    MAILSYNC_INBOX_URL and MAILSYNC_INBOX_SMTP_URL (scripts/mail-catcher.sh)
#   scripts/local-stack.sh token UUID [EMAIL]
#                                    a one-hour JWT for that user (creates the user if missing)
#   scripts/local-stack.sh delete-user UUID [DATABASE]
#                                    delete a user as Supabase Auth does (as supabase_auth_admin)
#   scripts/local-stack.sh destroy   stop it and delete the cluster
#
# Overrides (to run several stacks side by side): MAILSYNC_STACK_DIR,
# MAILSYNC_API_PORT (54321), MAILSYNC_DB_PORT (54322), MAILSYNC_REST_PORT (API+10),
# MAILSYNC_POOLER_PORT (API+8), MAILSYNC_CAPPED_API_PORT (API+7),
# MAILSYNC_CAPPED_REST_PORT (API+11), MAILSYNC_INBOX_PORT (API+3),
# MAILSYNC_SMTP_PORT (web inbox's SMTP, API+4), MAILSYNC_MTA_PORT (API+5),
# MAILSYNC_IMAP_PORT (API+6). Row caps: MAILSYNC_MAX_ROWS (1000, as
# hosted), MAILSYNC_CAPPED_MAX_ROWS (100); `up` restarts the REST servers
# when a cap changed.
set -euo pipefail
# Everything the stack writes is its user's alone (the password file, logs,
# configuration); directories other users must cross are opened explicitly.
umask 077
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

POSTRUST_VERSION=3.1.0
CACHE_DIR="${MAILSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailsync}"
# Built by scripts/setup.sh with the patches of scripts/postrust/.
POSTRUST_BIN="$CACHE_DIR/postrust-$POSTRUST_VERSION-$("$ROOT/scripts/postrust/id")/bin/postrust"

STACK_DIR="${MAILSYNC_STACK_DIR:-$ROOT/.local-stack}"
# Ports not given: those of the stack as it runs (recorded by `up` in
# stack.env), so a shell without the overrides reaches this stack and no
# other; mailsync follows the same rule (src/local_stack.rs).
state_port() {
  [ -f "$STACK_DIR/stack.env" ] || return 0
  grep "^export $1=" "$STACK_DIR/stack.env" | grep -o '127\.0\.0\.1:[0-9]*' | head -1 | cut -d: -f2
}
MAILSYNC_API_PORT="${MAILSYNC_API_PORT:-$(state_port SUPABASE_URL)}"
MAILSYNC_DB_PORT="${MAILSYNC_DB_PORT:-$(state_port SUPABASE_DB_URL)}"
API_PORT="${MAILSYNC_API_PORT:-54321}"
DB_PORT="${MAILSYNC_DB_PORT:-54322}"
REST_PORT="${MAILSYNC_REST_PORT:-$((API_PORT + 10))}"
POOLER_PORT="${MAILSYNC_POOLER_PORT:-$((API_PORT + 8))}"
CAPPED_API_PORT="${MAILSYNC_CAPPED_API_PORT:-$((API_PORT + 7))}"
CAPPED_REST_PORT="${MAILSYNC_CAPPED_REST_PORT:-$((API_PORT + 11))}"
# The web inbox (scripts/mail-catcher.sh reads the same variables).
MAILDEV_SMTP_PORT="${MAILSYNC_SMTP_PORT:-$((API_PORT + 4))}"
MTA_PORT="${MAILSYNC_MTA_PORT:-$((API_PORT + 5))}"
IMAP_PORT="${MAILSYNC_IMAP_PORT:-$((API_PORT + 6))}"
# mail-catcher.sh derives its ports from the same API port.
export MAILSYNC_API_PORT="$API_PORT"
MAX_ROWS="${MAILSYNC_MAX_ROWS:-1000}"
CAPPED_MAX_ROWS="${MAILSYNC_CAPPED_MAX_ROWS:-100}"
# Hosted Supabase's global limit for roles without a timeout of their own.
GLOBAL_STATEMENT_TIMEOUT=2min

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# The JWT secret is the stack's own: generated by the first `up` (never the
# well-known development secret), kept in the stack directory, mode 600,
# across `up` and `down` (`destroy` deletes it). The REST servers check
# tokens with it, `token` signs with it, and the anon key `env` prints is
# signed with it, so both are this stack's alone. A stack started before the
# file existed runs with Supabase's documented development secret and anon
# key until `up` gives it its own (and restarts the REST servers).
JWT_SECRET_FILE="$STACK_DIR/jwt-secret"
DEV_JWT_SECRET="super-secret-jwt-token-with-at-least-32-characters-long"
DEV_ANON_KEY="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
# hs256 SECRET PAYLOAD_JSON: a JWT signed with SECRET.
hs256() {
  local header payload sig
  header="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)"
  payload="$(printf '%s' "$2" | b64url)"
  sig="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$1" -binary | b64url)"
  printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}
set_keys() {
  if [ -s "$JWT_SECRET_FILE" ]; then
    JWT_SECRET="$(cat "$JWT_SECRET_FILE")"
    # The anon role's key, as Supabase's (no expiry before 2032).
    ANON_KEY="$(hs256 "$JWT_SECRET" '{"iss":"mailsync-local-stack","role":"anon","exp":1983812996}')"
  else
    JWT_SECRET="$DEV_JWT_SECRET"
    ANON_KEY="$DEV_ANON_KEY"
  fi
}
set_keys
# The database password is the stack's own: generated when the cluster is
# made (never a well-known word), kept in the stack directory, mode 600, and
# printed by `env`. A cluster made before it existed still has the old
# 'postgres' until `up` replaces it.
PASSWORD_FILE="$STACK_DIR/db-password"
DB_PASSWORD="$(cat "$PASSWORD_FILE" 2>/dev/null || echo postgres)"
set_urls() {
  DB_URL="postgresql://postgres:$DB_PASSWORD@127.0.0.1:$DB_PORT/postgres"
  POOLER_URL="postgresql://postgres:$DB_PASSWORD@127.0.0.1:$POOLER_PORT/postgres"
}
set_urls
API_URL="http://127.0.0.1:$API_PORT"
CAPPED_API_URL="http://127.0.0.1:$CAPPED_API_PORT"
NGINX_PERL_MODULE=/usr/lib/nginx/modules/ngx_http_perl_module.so

log() { printf 'local-stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

new_password() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

# write_password PASSWORD: the file, replaced atomically, mode 600.
write_password() {
  printf '%s\n' "$1" > "$PASSWORD_FILE.tmp"
  chmod 600 "$PASSWORD_FILE.tmp"
  mv -f "$PASSWORD_FILE.tmp" "$PASSWORD_FILE"
}

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
# reach it, otherwise in a directory of its own under /var/tmp. Either way a
# directory only the cluster's OS user can enter (mode 700): its Unix socket
# and files are out of other local users' reach. In /var/tmp (world-writable)
# the directory is made by mktemp, under a name nobody can guess or plant a
# link at, and a recorded one is used again only if it is still a real
# directory owned by the cluster's user.
pg_dir() {
  local dir
  if [ -f "$STACK_DIR/pgdir" ]; then
    dir="$(cat "$STACK_DIR/pgdir")"
    if [ "$(id -u)" = 0 ] && [ -e "$dir" ] \
       && { [ -L "$dir" ] || [ ! -d "$dir" ] || [ "$(stat -c %U "$dir")" != postgres ]; }; then
      die "$dir (recorded in $STACK_DIR/pgdir) is not a directory of the postgres user; refusing to use it"
    fi
    # Clusters made before this was private become so.
    if [ -d "$dir" ] && [ ! -L "$dir" ]; then chmod 700 "$dir" 2>/dev/null || true; fi
    echo "$dir"
    return
  fi
  dir="$STACK_DIR/pg"
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
    if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
      rmdir "$dir" 2>/dev/null || true
      dir="$(mktemp -d /var/tmp/mailsync-stack-XXXXXXXXXXXX)"
      chown postgres: "$dir" && chmod 700 "$dir"
    fi
  else
    mkdir -p "$dir" && chmod 700 "$dir"
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
    if [ ! -s "$PASSWORD_FILE" ]; then
      DB_PASSWORD="$(new_password)"
      write_password "$DB_PASSWORD"
      set_urls
    fi
    # Written by the cluster's own user (root writes nothing in its directory).
    local pwfile="$dir/pwfile"
    printf '%s\n' "$DB_PASSWORD" | as_pg sh -c 'umask 077; cat > "$1"' sh "$pwfile"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg rm -f "$pwfile"
    cat >> "$dir/data/postgresql.conf" <<CONF
# mailsync local stack: throwaway data, speed over durability
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
statement_timeout = '$GLOBAL_STATEMENT_TIMEOUT'
CONF
  fi
  if pg_running; then
    log "PostgreSQL already running on 127.0.0.1:$DB_PORT"
  else
    log "starting PostgreSQL on 127.0.0.1:$DB_PORT"
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $DB_PORT" start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  # Clusters made before the hosted limits get the global timeout too.
  if [ "$(psql_admin -tAc "select setting from pg_settings where name = 'statement_timeout'")" != 120000 ]; then
    log "statement_timeout = $GLOBAL_STATEMENT_TIMEOUT for every role without its own (hosted's global limit)"
    psql_admin -c "alter system set statement_timeout = '$GLOBAL_STATEMENT_TIMEOUT'" -c "select pg_reload_conf()" >/dev/null
  fi
  # Loaded where Supabase's objects are missing (a new cluster, or one made
  # before supabase_auth_admin and the authenticator's timeout existed).
  if [ "$(psql_admin -tAc "select to_regnamespace('auth') is not null
        and exists (select 1 from pg_roles where rolname = 'authenticator')
        and exists (select 1 from pg_roles where rolname = 'supabase_auth_admin')
        and exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                    where r.rolname = 'authenticator' and s.setconfig::text like '%statement_timeout%')")" != t ]; then
    log "loading sql/local/supabase-compat.sql"
    psql_admin -f "$ROOT/sql/local/supabase-compat.sql" >/dev/null
  fi
  secure_roles
}

# The login roles (postgres, authenticator, supabase_auth_admin) take the
# stack's own password, once: a new cluster's roles made with the old
# development word, or a cluster made before the password file, which then
# gets a new password; servers logged in with the old one are restarted.
secure_roles() {
  [ -s "$PASSWORD_FILE" ] && [ -f "$PASSWORD_FILE.applied" ] && return 0
  local new="$DB_PASSWORD"
  [ -s "$PASSWORD_FILE" ] || new="$(new_password)"
  log "setting the stack's own database password (in $PASSWORD_FILE, mode 600; \`$0 env\` prints it)"
  psql_admin -v pw="$new" >/dev/null <<'SQL'
select format('alter role %I password %L', rolname, :'pw') from pg_roles
where rolname in ('postgres', 'authenticator', 'supabase_auth_admin') \gexec
alter system set unix_socket_permissions = '0700';
SQL
  write_password "$new"
  : > "$PASSWORD_FILE.applied"
  DB_PASSWORD="$new"
  set_urls
  stop_pidfile "$(pg_dir)/pgbouncer/pgbouncer.pid" "pgbouncer (new password)"
  stop_pidfile "$STACK_DIR/postrust.pid" "postrust (new password)"
  stop_pidfile "$STACK_DIR/postrust-capped.pid" "postrust-capped (new password)"
}

# The per-role settings PostgREST applies to the role it switches to (read
# from pg_db_role_setting, as PostgREST does), in postrust's
# PGRST_ROLE_SETTINGS form: {"anon":{"statement_timeout":3000},...}.
role_settings_json() {
  psql_admin -tA <<'SQL'
select coalesce(json_object_agg(rolname, json_build_object('statement_timeout', ms)), '{}')
from (
  select r.rolname,
         (m[1])::bigint * case coalesce(nullif(m[2], ''), 'ms')
           when 'ms' then 1 when 's' then 1000 when 'min' then 60000
           when 'h' then 3600000 when 'd' then 86400000 end as ms
  from pg_roles r
  join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
  cross join lateral unnest(s.setconfig) c
  cross join lateral regexp_match(c, '^statement_timeout=(\d+)\s*([a-z]*)$') m
  where r.rolname <> 'authenticator' and pg_has_role('authenticator', r.oid, 'member')
) t
SQL
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start_postrust NAME PORT MAX_ROWS POOL: one REST server; restarted when
# its row cap, role settings, JWT secret or binary changed since it started.
start_postrust() {
  local name="$1" port="$2" max_rows="$3" pool="$4" settings want
  [ -x "$POSTRUST_BIN" ] || die "postrust $POSTRUST_VERSION is not installed; run scripts/setup.sh"
  [[ "$max_rows" =~ ^[0-9]+$ ]] || die "the row cap must be a whole number (got '$max_rows')"
  settings="$(role_settings_json)"
  # The secret by its digest only (the file is the one place it is written).
  want="max_rows=$max_rows role_settings=$settings jwt=$(printf '%s' "$JWT_SECRET" | sha256sum | cut -c1-16) bin=$POSTRUST_BIN"
  if pid_alive "$STACK_DIR/$name.pid"; then
    if [ "$(cat "$STACK_DIR/$name.conf" 2>/dev/null)" = "$want" ]; then
      log "$name already running on 127.0.0.1:$port (row cap $max_rows)"
      return
    fi
    stop_pidfile "$STACK_DIR/$name.pid" "$name (its settings changed)"
  fi
  log "starting $name ($POSTRUST_VERSION) on 127.0.0.1:$port, row cap $max_rows"
  DATABASE_URL="postgresql://authenticator:$DB_PASSWORD@127.0.0.1:$DB_PORT/postgres" \
  PGRST_DB_ANON_ROLE=anon \
  PGRST_DB_SCHEMAS=public \
  PGRST_JWT_SECRET="$JWT_SECRET" \
  PGRST_SERVER_HOST=127.0.0.1 \
  PGRST_SERVER_PORT="$port" \
  PGRST_COMPAT_MODE=true \
  PGRST_DB_CHANNEL_ENABLED=true \
  PGRST_DB_MAX_ROWS="$max_rows" \
  PGRST_ROLE_SETTINGS="$settings" \
  PGRST_DB_POOL="$pool" \
  PGRST_MAX_BODY_SIZE=$((64 * 1024 * 1024)) \
  PGRST_LOG_LEVEL=warn \
    nohup "$POSTRUST_BIN" > "$STACK_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$STACK_DIR/$name.pid"
  printf '%s\n' "$want" > "$STACK_DIR/$name.conf"
}

# The stack's own JWT secret, made once (a new stack, or one started before
# it existed, whose REST servers restart with it: their settings include it).
ensure_jwt_secret() {
  [ -s "$JWT_SECRET_FILE" ] && return 0
  log "generating the stack's own JWT secret (in $JWT_SECRET_FILE, mode 600; the anon key \`$0 env\` prints is signed with it)"
  head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 64 > "$JWT_SECRET_FILE.tmp"
  [ "$(wc -c < "$JWT_SECRET_FILE.tmp")" -eq 64 ] || die "could not generate a JWT secret"
  chmod 600 "$JWT_SECRET_FILE.tmp"
  mv -f "$JWT_SECRET_FILE.tmp" "$JWT_SECRET_FILE"
  set_keys
}

pgbouncer_bin() { command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer; }

# PgBouncer in transaction mode, as Supavisor's port 6543 on hosted projects
# (and the Supabase CLI's local pooler on 54329). It runs as the cluster's OS
# user (never root), reaches PostgreSQL over the cluster's Unix socket, and
# checks each client's password against the cluster's own SCRAM secrets
# (auth_file for postgres, auth_query for every other role), so every login
# role works through it as it does directly.
start_pgbouncer() {
  local dir b
  dir="$(pg_dir)"; b="$dir/pgbouncer"
  [ -x "$(pgbouncer_bin)" ] || die "pgbouncer is not installed; run scripts/setup.sh"
  if pid_alive "$b/pgbouncer.pid"; then
    log "pgbouncer already running on 127.0.0.1:$POOLER_PORT"
    return
  fi
  mkdir -p "$b"
  # The auth_user itself is checked against auth_file, not auth_query: it
  # gets its SCRAM secret from the cluster; every other role is looked up.
  psql_admin -tA -c "select format('\"%s\" \"%s\"', rolname, rolpassword) from pg_authid where rolname = 'postgres'" > "$b/userlist.txt"
  chmod 600 "$b/userlist.txt"
  cat > "$b/pgbouncer.ini" <<CONF
; Generated by scripts/local-stack.sh: a transaction-mode pooler.
[databases]
* = host=$dir port=$DB_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $POOLER_PORT
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = $b/userlist.txt
auth_user = postgres
auth_query = SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = \$1
max_client_conn = 400
default_pool_size = 20
max_db_connections = 80
ignore_startup_parameters = extra_float_digits
admin_users = postgres
logfile = $b/pgbouncer.log
pidfile = $b/pgbouncer.pid
CONF
  [ "$(id -u)" = 0 ] && chown -R postgres: "$b"
  log "starting pgbouncer (transaction mode) on 127.0.0.1:$POOLER_PORT"
  as_pg "$(pgbouncer_bin)" -d -q "$b/pgbouncer.ini" 2>/dev/null || { tail -n 20 "$b/pgbouncer.log" >&2 || true; die "pgbouncer did not start"; }
  local i
  for i in $(seq 1 50); do
    PGPASSWORD="$DB_PASSWORD" psql -X -q -h 127.0.0.1 -p "$POOLER_PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -n 20 "$b/pgbouncer.log" >&2 || true
  die "pgbouncer does not answer on 127.0.0.1:$POOLER_PORT"
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# The Supabase URL layout for one REST server: nginx_server LISTEN_PORT UPSTREAM.
nginx_server() {
  cat <<CONF
  server {
    listen 127.0.0.1:$1;
    default_type application/json;
    location /rest/v1/ {
      # PostgREST reads a query string as a form does: '+' is a space
      # (supabase-js and browsers encode spaces so). postrust decodes only
      # percent escapes, so the proxy turns each '+' into %20 first; a
      # literal plus arrives as %2B and is left alone.
      set \$args \$pgrst_args;
      proxy_pass http://$2/;
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
CONF
}

start_nginx() {
  local n="$STACK_DIR/nginx"
  if pid_alive "$n/nginx.pid"; then
    if grep -q 'columns=' "$n/nginx.conf" 2>/dev/null && grep -q "listen 127.0.0.1:$CAPPED_API_PORT;" "$n/nginx.conf"; then
      log "nginx already running on 127.0.0.1:$API_PORT"
      return
    fi
    stop_pidfile "$n/nginx.pid" "nginx (an older configuration)"
  fi
  [ -x "$(nginx_bin)" ] || die "nginx is not installed; run scripts/setup.sh"
  [ -f "$NGINX_PERL_MODULE" ] || die "nginx's perl module is not installed; run scripts/setup.sh"
  mkdir -p "$n/tmp"
  chmod 711 "$n"
  local user_line=""
  # The workers' scratch space is theirs alone.
  if [ "$(id -u)" = 0 ]; then
    user_line="user nobody nogroup;"
    chown nobody:nogroup "$n/tmp"
  fi
  chmod 700 "$n/tmp"
  cat > "$n/nginx.conf" <<CONF
# Generated by scripts/local-stack.sh: the Supabase URL layout.
load_module $NGINX_PERL_MODULE;
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
  # The query string as PostgREST reads it (see nginx_server): '+' is a
  # space, and the column names of ?columns= may be double-quoted, as
  # supabase-js sends them for a bulk insert (columns="a","b").
  perl_set \$pgrst_args 'sub {
    my \$q = shift->args;
    return "" unless defined \$q;
    \$q =~ s/[+]/%20/g;
    my @params = split /&/, \$q, -1;
    for (@params) { s/%22|"//gi if /^columns=/; }
    return join "&", @params;
  }';
  upstream rest { server 127.0.0.1:$REST_PORT; keepalive 32; }
  upstream rest_capped { server 127.0.0.1:$CAPPED_REST_PORT; keepalive 8; }
$(nginx_server "$API_PORT" rest)
$(nginx_server "$CAPPED_API_PORT" rest_capped)
}
CONF
  log "starting nginx on 127.0.0.1:$API_PORT"
  "$(nginx_bin)" -e "$n/error.log" -p "$n" -c "$n/nginx.conf" || die "nginx did not start (see $n/error.log)"
}

# wait_rest URL NAME
wait_rest() {
  local url="$1" name="$2" i code
  for i in $(seq 1 150); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $ANON_KEY" "$url/rest/v1/" || true)"
    case "$code" in 2*|3*|4*) return 0 ;; esac
    if ! pid_alive "$STACK_DIR/$name.pid"; then
      # Its port taken (see wait_postrust): the caller starts it again.
      grep -q "Address already in use" "$STACK_DIR/$name.log" 2>/dev/null && return 2
      tail -n 20 "$STACK_DIR/$name.log" >&2 || true
      die "$name exited"
    fi
    sleep 0.2
  done
  tail -n 20 "$STACK_DIR/$name.log" >&2 || true
  die "the REST API did not answer at $url/rest/v1/"
}

# Waits for a REST server; one that could not take its port (an outgoing
# connection given it before the ports were reserved, or where they cannot
# be: seen once in CI) is started again, after saying who holds the port.
wait_postrust() {
  local name="$1" port="$2" max_rows="$3" pool="$4" url="$5" try
  for try in 1 2 3 4 5; do
    if wait_rest "$url" "$name"; then
      return 0
    fi
    log "$name: 127.0.0.1:$port is in use ($(ss -tanpH "( sport = :$port )" 2>/dev/null | head -n 2 | tr -s ' ' | tr '\n' ';')); trying again"
    sleep 1
    start_postrust "$name" "$port" "$max_rows" "$pool"
  done
  tail -n 20 "$STACK_DIR/$name.log" >&2 || true
  die "$name could not take 127.0.0.1:$port"
}

# ---------------------------------------------------------------------------
# The mail servers: a private Postfix (the relay mailsync sends through) and
# a private Dovecot (IMAP over the return path's mailbox).
#
# Postfix runs from its own configuration directory, listens on 127.0.0.1
# only, offers DSN and PIPELINING, and treats the test domains so:
#   deliver.test   delivered by Postfix itself (a Maildir of its own): a
#                  report says `delivered`; a copy goes to the web inbox as
#                  <user>@copy.deliver.test (a BCC: it asks for no report)
#   nouser.test    accepted, then bounced: an RFC 3464 report, 5.1.1
#   later.test     deferred (4.2.1): a `delayed` report within seconds; it
#                  fails after MAIL_QUEUE_LIFETIME (5 minutes)
#   mailsync.test  bounces@ (and bounces+TOKEN@, VERP) is the return path's
#                  mailbox, served by Dovecot; other addresses bounce (5.1.1)
#   anything else  relayed to the web inbox (maildev)
# Postfix needs root; started by another user the stack runs without it (and
# MAILSYNC_SMTP_URL is then the web inbox's own SMTP server).
MAIL_QUEUE_LIFETIME=5m
RETURN_PATH=bounces@mailsync.test
IMAP_USER=bounces
IMAP_PASSWORD_FILE="$STACK_DIR/imap-password"
# The user the mailboxes belong to (Debian's `mail`): Postfix writes them
# and Dovecot reads them as that user, never as root.
MAILBOX_USER=mail

mail_servers_enabled() { [ "$(id -u)" = 0 ]; }

# Where the mail servers' files live: inside the stack directory when the
# users Postfix and Dovecot run as can reach it, otherwise a directory made
# by mktemp under /var/tmp (recorded in $STACK_DIR/maildir), as pg_dir does.
mail_dir() {
  local dir
  if [ -f "$STACK_DIR/maildir" ]; then
    dir="$(cat "$STACK_DIR/maildir")"
    if [ -e "$dir" ] && { [ -L "$dir" ] || [ ! -d "$dir" ] || [ "$(stat -c %U "$dir")" != root ]; }; then
      die "$dir (recorded in $STACK_DIR/maildir) is not a directory of root; refusing to use it"
    fi
    mkdir -p "$dir" && chmod 711 "$dir"
    echo "$dir"
    return
  fi
  dir="$STACK_DIR/mail"
  mkdir -p "$dir" && chmod 711 "$dir"
  if ! runuser -u postfix -- test -x "$dir" 2>/dev/null || ! runuser -u "$MAILBOX_USER" -- test -x "$dir" 2>/dev/null; then
    rmdir "$dir" 2>/dev/null || true
    dir="$(mktemp -d /var/tmp/mailsync-mail-XXXXXXXXXXXX)"
    chmod 711 "$dir"
  fi
  echo "$dir" > "$STACK_DIR/maildir"
  echo "$dir"
}

imap_password() {
  if [ ! -s "$IMAP_PASSWORD_FILE" ]; then
    printf '%s\n' "$(new_password)" > "$IMAP_PASSWORD_FILE.tmp"
    chmod 600 "$IMAP_PASSWORD_FILE.tmp"
    mv -f "$IMAP_PASSWORD_FILE.tmp" "$IMAP_PASSWORD_FILE"
  fi
  cat "$IMAP_PASSWORD_FILE"
}

# As root, Postfix accepts a non-default configuration directory only when
# the default main.cf lists it in alternate_config_directories; added once
# (several stacks may share the machine: the edit is serialised).
postfix_allow_config_dir() {
  local conf="$1"
  (
    flock 9
    local cur
    touch /etc/postfix/main.cf
    cur="$(postconf -h alternate_config_directories 2>/dev/null || true)"
    case " ${cur//,/ } " in
      *" $conf "*) ;;
      *) postconf -e "alternate_config_directories = ${cur:+$cur, }$conf" ;;
    esac
  ) 9> /etc/postfix/.mailsync-stack.lock
}

postfix_forget_config_dir() {
  local conf="$1"
  [ -f /etc/postfix/main.cf ] || return 0
  (
    flock 9
    local cur rest="" d
    cur="$(postconf -h alternate_config_directories 2>/dev/null || true)"
    for d in ${cur//,/ }; do
      [ "$d" = "$conf" ] || rest="${rest:+$rest, }$d"
    done
    [ "$rest" = "$cur" ] || postconf -e "alternate_config_directories = $rest"
  ) 9> /etc/postfix/.mailsync-stack.lock
}

# The relay's certificate (STARTTLS), signed by the stack's own certificate
# authority: $md/tls/ca.pem, which a client trusts with
# MAILSYNC_SMTP_CA_FILE. Valid for localhost, 127.0.0.1 and this machine's
# host name; made again when the host name changed or it nears its end.
ensure_relay_certificate() {
  local dir="$1/tls" host
  host="$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"
  if [ -s "$dir/ca.pem" ] && [ -s "$dir/relay.pem" ] && [ -s "$dir/relay.key" ] \
     && openssl x509 -in "$dir/relay.pem" -noout -checkend 86400 >/dev/null 2>&1 \
     && openssl x509 -in "$dir/relay.pem" -noout -ext subjectAltName 2>/dev/null | grep -qF "DNS:$host"; then
    return 0
  fi
  log "making the relay's TLS certificate (its authority: $dir/ca.pem)"
  rm -rf "$dir" && mkdir -p "$dir" && chmod 755 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=mailsync local stack authority" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >/dev/null 2>&1 || die "openssl could not make the stack's certificate authority"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$dir/relay.key" -out "$dir/relay.csr" >/dev/null 2>&1 \
    || die "openssl could not make the relay's key"
  printf 'subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$host" > "$dir/relay.ext"
  openssl x509 -req -in "$dir/relay.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/relay.ext" -out "$dir/relay.pem" >/dev/null 2>&1 \
    || die "openssl could not sign the relay's certificate"
  rm -f "$dir/relay.csr" "$dir/relay.ext" "$dir/ca.srl" "$dir/ca.key"
  chmod 600 "$dir/relay.key" && chmod 644 "$dir/ca.pem" "$dir/relay.pem"
}

write_postfix_config() {
  local md="$1" conf="$1/postfix/etc" uid gid
  uid="$(id -u "$MAILBOX_USER")"; gid="$(id -g "$MAILBOX_USER")"
  mkdir -p "$conf" "$md/postfix/queue" "$md/postfix/data"
  chmod 755 "$md/postfix" "$conf" "$md/postfix/queue"
  chown postfix: "$md/postfix/data" && chmod 700 "$md/postfix/data"
  mkdir -p "$md/mailboxes"
  chown "$MAILBOX_USER:" "$md/mailboxes" && chmod 700 "$md/mailboxes"
  ensure_relay_certificate "$md"
  cat > "$conf/main.cf.new" <<CONF
# Generated by scripts/local-stack.sh: the local stack's mail relay.
compatibility_level = 3.6
queue_directory = $md/postfix/queue
data_directory = $md/postfix/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-mailsync-$MTA_PORT
maillog_file = $md/postfix/maillog
maillog_file_prefixes = $md/postfix
myhostname = relay.mailsync.test
mydomain = mailsync.test
myorigin = \$mydomain
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local mailboxes here
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# Accept first, report later: smtpd would otherwise refuse at RCPT time the
# addresses routed to the error and retry transports (nouser.test,
# later.test), and there would be no report to read.
smtpd_reject_unlisted_recipient = no
# Headers are relayed as the client wrote them.
local_header_rewrite_clients =
bounce_template_file = $conf/bounce.cf
smtpd_peername_lookup = no
smtpd_banner = \$myhostname ESMTP mailsync local stack
# STARTTLS offered (a client on loopback may go on in clear), with the
# certificate of the stack's own authority; the Received header says
# whether the client used it.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $md/tls/relay.pem
smtpd_tls_key_file = $md/tls/relay.key
smtpd_tls_received_header = yes
smtp_tls_security_level = none
biff = no
# Every domain below not routed otherwise goes to the web inbox.
relayhost = [127.0.0.1]:$MAILDEV_SMTP_PORT
transport_maps = regexp:$conf/transport
virtual_mailbox_domains = deliver.test, mailsync.test
virtual_mailbox_base = $md/mailboxes
virtual_mailbox_maps = regexp:$conf/mailboxes
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = $uid
recipient_delimiter = +
recipient_bcc_maps = regexp:$conf/inbox_copies
# Fast queue: a deferred message is retried within seconds, a delay report
# is sent at the first retry, and the message fails after $MAIL_QUEUE_LIFETIME.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
delay_warning_time = 1s
maximal_queue_lifetime = $MAIL_QUEUE_LIFETIME
bounce_queue_lifetime = $MAIL_QUEUE_LIFETIME
CONF
  # The delay report's wording in the units of the fast queue (the built-in
  # one counts hours and days, which round to 0 here).
  # (Read with an empty configuration: a machine where Postfix was installed
  # with "No configuration" has no /etc/postfix/main.cf, and postconf
  # reading the default directory then fails.)
  local empty_conf
  empty_conf="$(mktemp -d)"
  touch "$empty_conf/main.cf"
  postconf -c "$empty_conf" -t 2>/dev/null | sed -n '/^delay_template = <<EOF$/,/^EOF$/p' \
    | sed -e 's/\$delay_warning_time_hours hour(s)/$delay_warning_time_seconds second(s)/' \
          -e 's/\$maximal_queue_lifetime_days day(s)/$maximal_queue_lifetime_minutes minute(s)/' \
    > "$conf/bounce.cf.new"
  rm -rf "$empty_conf"
  grep -q 'delay_warning_time_seconds' "$conf/bounce.cf.new" || die "could not make Postfix's delay report template"
  cat > "$conf/transport.new" <<'CONF'
/@nouser\.test$/   error:5.1.1 mailbox unavailable: nouser.test has no mailboxes
/@later\.test$/    retry:4.2.1 mailbox temporarily unavailable: later.test defers every message
CONF
  cat > "$conf/mailboxes.new" <<'CONF'
/^bounces(\+[^@]*)?@mailsync\.test$/   mailsync.test/bounces/
/@deliver\.test$/                      deliver.test/
CONF
  cat > "$conf/inbox_copies.new" <<'CONF'
/^(.+)@deliver\.test$/   ${1}@copy.deliver.test
CONF
  cat > "$conf/master.cf.new" <<CONF
# Generated by scripts/local-stack.sh. Nothing is chrooted.
127.0.0.1:$MTA_PORT inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
virtual   unix  - n n -    - virtual
anvil     unix  - - n -    1 anvil
tlsmgr    unix  - - n 1000? 1 tlsmgr
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
CONF
  local f changed=1
  for f in main.cf master.cf bounce.cf transport mailboxes inbox_copies; do
    chmod 644 "$conf/$f.new"
    if cmp -s "$conf/$f.new" "$conf/$f"; then rm -f "$conf/$f.new"; else mv -f "$conf/$f.new" "$conf/$f"; changed=0; fi
  done
  return $changed
}

postfix_running() { postfix -c "$1/postfix/etc" status >/dev/null 2>&1; }

# wait_port PORT NAME LOG
wait_port() {
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$3" >&2 || true
  die "$2 does not answer on 127.0.0.1:$1"
}

start_postfix() {
  local md conf
  md="$(mail_dir)"; conf="$md/postfix/etc"
  [ -x /usr/sbin/postfix ] || die "Postfix is not installed; run scripts/setup.sh"
  if write_postfix_config "$md" && postfix_running "$md"; then
    log "Postfix: new configuration, reloading"
    postfix -c "$conf" reload >/dev/null 2>&1 || die "postfix reload failed (see $md/postfix/maillog)"
  fi
  postfix_allow_config_dir "$conf"
  if postfix_running "$md"; then
    # A changed listening port needs a restart, not a reload.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$MTA_PORT") 2>/dev/null; then
      postfix -c "$conf" stop >/dev/null 2>&1 || true
    else
      log "Postfix already running on 127.0.0.1:$MTA_PORT"
      return
    fi
  fi
  log "starting Postfix on 127.0.0.1:$MTA_PORT (relay to the web inbox on 127.0.0.1:$MAILDEV_SMTP_PORT)"
  postfix -c "$conf" post-install create-missing >/dev/null 2>&1 \
    || die "postfix could not prepare $md/postfix/queue"
  # The port may be held for a moment by a socket of another program (an
  # outgoing connection given it before the port was reserved): say which,
  # and try again for a few seconds rather than fail at once.
  local try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    postfix -c "$conf" start >/dev/null 2>"$md/postfix/start.err" && break
    if [ "$try" -lt 10 ] && tail -n 5 "$md/postfix/maillog" 2>/dev/null | grep -q "port $MTA_PORT: Address already in use"; then
      log "Postfix: 127.0.0.1:$MTA_PORT is in use ($(ss -tanpH "( sport = :$MTA_PORT )" 2>/dev/null | head -n 2 | tr -s ' ' | tr '\n' ';')); trying again"
      sleep 1
      continue
    fi
    cat "$md/postfix/start.err" >&2; tail -n 20 "$md/postfix/maillog" >&2 || true; die "Postfix did not start"
  done
  wait_port "$MTA_PORT" Postfix "$md/postfix/maillog"
}

stop_postfix() {
  local md="$1"
  if [ -x /usr/sbin/postfix ] && [ -f "$md/postfix/etc/main.cf" ] && postfix_running "$md"; then
    postfix -c "$md/postfix/etc" stop >/dev/null 2>&1 || true
    log "stopped Postfix"
  fi
}

write_dovecot_config() {
  local md="$1" d="$1/dovecot" pw hash
  mkdir -p "$d"
  chmod 711 "$d"
  pw="$(imap_password)"
  # The passwd-file holds a salted SHA-512 crypt hash, never the password.
  if [ ! -s "$d/users" ] || [ "$IMAP_PASSWORD_FILE" -nt "$d/users" ]; then
    hash="$(printf '%s' "$pw" | openssl passwd -6 -stdin)"
    printf '%s:{SHA512-CRYPT}%s::::::\n' "$IMAP_USER" "$hash" > "$d/users"
    # Read by Dovecot's auth process, which runs as its own user.
    chown root:dovecot "$d/users" && chmod 640 "$d/users"
  fi
  cat > "$d/dovecot.conf.new" <<CONF
# Generated by scripts/local-stack.sh: IMAP over the return path's mailbox.
base_dir = $d/run
state_dir = $d/state
instance_name = mailsync-$IMAP_PORT
log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $(id -u "$MAILBOX_USER")
mail_location = maildir:~
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%n $d/users
}
userdb {
  driver = static
  args = uid=$MAILBOX_USER gid=$MAILBOX_USER home=$md/mailboxes/mailsync.test/bounces
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
CONF
  chmod 644 "$d/dovecot.conf.new"
  if cmp -s "$d/dovecot.conf.new" "$d/dovecot.conf"; then rm -f "$d/dovecot.conf.new"; return 1; fi
  mv -f "$d/dovecot.conf.new" "$d/dovecot.conf"
}

dovecot_running() { [ -f "$1/dovecot/run/master.pid" ] && kill -0 "$(cat "$1/dovecot/run/master.pid")" 2>/dev/null; }

start_dovecot() {
  local md d
  md="$(mail_dir)"; d="$md/dovecot"
  [ -x /usr/sbin/dovecot ] || die "Dovecot is not installed; run scripts/setup.sh"
  if write_dovecot_config "$md" && dovecot_running "$md"; then
    log "Dovecot: new configuration, restarting"
    stop_dovecot "$md"
  fi
  # The mailbox exists before the first report arrives.
  runuser -u "$MAILBOX_USER" -- sh -c 'umask 077; mkdir -p "$1/cur" "$1/new" "$1/tmp"' sh "$md/mailboxes/mailsync.test/bounces"
  if dovecot_running "$md"; then
    log "Dovecot already running on 127.0.0.1:$IMAP_PORT"
    return
  fi
  log "starting Dovecot (IMAP) on 127.0.0.1:$IMAP_PORT"
  /usr/sbin/dovecot -c "$d/dovecot.conf" 2>"$d/start.err" \
    || { cat "$d/start.err" >&2; tail -n 20 "$d/dovecot.log" >&2 || true; die "Dovecot did not start"; }
  wait_port "$IMAP_PORT" Dovecot "$d/dovecot.log"
}

stop_dovecot() {
  local md="$1" pid i
  dovecot_running "$md" || return 0
  pid="$(cat "$md/dovecot/run/master.pid")"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  log "stopped Dovecot"
}

start_mail_servers() {
  if ! mail_servers_enabled; then
    log "Postfix and Dovecot need root: this stack runs without them (MAILSYNC_SMTP_URL is the web inbox's SMTP server)"
    return
  fi
  if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/dovecot ]; then "$ROOT/scripts/setup.sh"; fi
  start_postfix
  start_dovecot
}

stop_mail_servers() {
  mail_servers_enabled && [ -f "$STACK_DIR/maildir" ] || return 0
  local md; md="$(cat "$STACK_DIR/maildir")"
  [ -d "$md" ] || return 0
  stop_postfix "$md"
  stop_dovecot "$md"
}

destroy_mail_servers() {
  mail_servers_enabled && [ -f "$STACK_DIR/maildir" ] || return 0
  local md; md="$(cat "$STACK_DIR/maildir")"
  postfix_forget_config_dir "$md/postfix/etc"
  rm -rf "$md"
}

mail_status() {
  mail_servers_enabled || { echo "mta       not run (needs root)"; return 0; }
  local md ok=0
  md="$(mail_dir)"
  if postfix_running "$md"; then echo "mta       running  127.0.0.1:$MTA_PORT (Postfix, DSN)"; else echo "mta       stopped"; ok=1; fi
  if dovecot_running "$md"; then echo "imap      running  127.0.0.1:$IMAP_PORT (Dovecot, mailbox $RETURN_PATH)"; else echo "imap      stopped"; ok=1; fi
  return $ok
}

mail_env() {
  if mail_servers_enabled; then
    cat <<ENV
export MAILSYNC_SMTP_URL='smtp://127.0.0.1:$MTA_PORT'
export MAILSYNC_RETURN_PATH='$RETURN_PATH'
export MAILSYNC_BOUNCES_URL='imap://$IMAP_USER:$(imap_password)@127.0.0.1:$IMAP_PORT/INBOX'
export MAILSYNC_RELAY_CA_FILE='$(mail_dir)/tls/ca.pem'
ENV
  else
    echo "export MAILSYNC_SMTP_URL='smtp://127.0.0.1:$MAILDEV_SMTP_PORT'"
  fi
}

# The stack's ports lie in the kernel's ephemeral range (32768-60999 by
# default): any outgoing connection on the machine (a pooled connection of
# this stack or of another, a download, a test) may be given one of them as
# its local port, and the server of the stack that listens there then fails
# with EADDRINUSE (maildev's inbox port, in CI). They are reserved
# (net.ipv4.ip_local_reserved_ports: the kernel no longer picks them for an
# outgoing connection; a server asking for one by number still gets it), when
# this user may change that setting (root, or sudo without a password);
# otherwise this says so and goes on.
reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports ports current missing
  [ -r "$file" ] || return 0
  ports="$API_PORT $DB_PORT $REST_PORT $POOLER_PORT $CAPPED_API_PORT $CAPPED_REST_PORT $MAILDEV_SMTP_PORT"
  ports="$ports ${MAILSYNC_INBOX_PORT:-$((API_PORT + 3))} $MTA_PORT $IMAP_PORT"
  current="$(cat "$file")"
  missing="$(awk -v list="$current" -v ports="$ports" 'BEGIN {
    n = split(list, ranges, ","); m = split(ports, want, " ")
    for (i = 1; i <= m; i++) {
      covered = 0
      for (j = 1; j <= n; j++) {
        k = split(ranges[j], ends, "-"); lo = ends[1] + 0; hi = (k > 1 ? ends[2] : ends[1]) + 0
        if (want[i] + 0 >= lo && want[i] + 0 <= hi) covered = 1
      }
      if (!covered) printf "%s%s", (out++ ? "," : ""), want[i]
    }
  }')"
  [ -n "$missing" ] || return 0
  if { printf '%s\n' "${current:+$current,}$missing" > "$file"; } 2>/dev/null \
     || { [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null \
          && printf '%s\n' "${current:+$current,}$missing" | sudo -n tee "$file" >/dev/null 2>&1; }; then
    log "reserved the stack's ports $missing from the kernel's ephemeral range (net.ipv4.ip_local_reserved_ports)"
  else
    log "note: could not reserve the stack's ports $missing from the kernel's ephemeral range (needs root); an outgoing connection may take one first"
  fi
}

cmd_up() {
  if ! pg_bindir >/dev/null || [ ! -x "$POSTRUST_BIN" ] || ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } \
     || [ ! -f "$NGINX_PERL_MODULE" ] || [ ! -x "$(pgbouncer_bin)" ]; then
    "$ROOT/scripts/setup.sh"
  fi
  mkdir -p "$STACK_DIR"
  # Others may cross it (the cluster's and nginx's users) but not list it;
  # what is inside is its owner's (umask 077).
  chmod 711 "$STACK_DIR"
  ensure_jwt_secret
  reserve_ports
  start_postgres
  # The servers that only listen start before the REST servers open their
  # pools (where the ports could not be reserved, a pooled connection's
  # local port could otherwise take one of them first).
  "$ROOT/scripts/mail-catcher.sh" up
  start_mail_servers
  start_nginx
  start_pgbouncer
  start_postrust postrust "$REST_PORT" "$MAX_ROWS" 20
  start_postrust postrust-capped "$CAPPED_REST_PORT" "$CAPPED_MAX_ROWS" 4
  wait_postrust postrust "$REST_PORT" "$MAX_ROWS" 20 "$API_URL"
  wait_postrust postrust-capped "$CAPPED_REST_PORT" "$CAPPED_MAX_ROWS" 4 "$CAPPED_API_URL"
  # What mailsync reads when no URL is configured (src/local_stack.rs).
  # It holds the database password: mode 600, replaced atomically.
  cmd_env > "$STACK_DIR/stack.env.tmp"
  chmod 600 "$STACK_DIR/stack.env.tmp"
  mv -f "$STACK_DIR/stack.env.tmp" "$STACK_DIR/stack.env"
  log "ready: API $API_URL (row cap $MAX_ROWS; $CAPPED_API_URL caps at $CAPPED_MAX_ROWS), database 127.0.0.1:$DB_PORT, pooler 127.0.0.1:$POOLER_PORT"
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
  stop_mail_servers
  "$ROOT/scripts/mail-catcher.sh" down
  rm -f "$STACK_DIR/stack.env"
  stop_pidfile "$STACK_DIR/nginx/nginx.pid" nginx
  stop_pidfile "$STACK_DIR/postrust.pid" postrust
  stop_pidfile "$STACK_DIR/postrust-capped.pid" postrust-capped
  [ -f "$STACK_DIR/pgdir" ] && stop_pidfile "$(pg_dir)/pgbouncer/pgbouncer.pid" pgbouncer
  if pg_bindir >/dev/null && pg_running; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$(pg_dir)/data" -m fast -w stop >/dev/null
    log "stopped PostgreSQL"
  fi
}

cmd_destroy() {
  cmd_down
  if [ -d "$STACK_DIR" ]; then
    local dir; dir="$(pg_dir)"
    destroy_mail_servers
    rm -rf "$dir" "$STACK_DIR"
    log "deleted $STACK_DIR"
  fi
}

cmd_status() {
  local ok=0
  mkdir -p "$STACK_DIR"
  if pg_bindir >/dev/null && pg_running; then echo "postgres  running  127.0.0.1:$DB_PORT"; else echo "postgres  stopped"; ok=1; fi
  if pid_alive "$(pg_dir)/pgbouncer/pgbouncer.pid"; then echo "pooler    running  127.0.0.1:$POOLER_PORT (transaction mode)"; else echo "pooler    stopped"; ok=1; fi
  if pid_alive "$STACK_DIR/postrust.pid"; then echo "postrust  running  127.0.0.1:$REST_PORT (row cap $(sed -n 's/^max_rows=\([0-9]*\).*/\1/p' "$STACK_DIR/postrust.conf" 2>/dev/null))"; else echo "postrust  stopped"; ok=1; fi
  if pid_alive "$STACK_DIR/postrust-capped.pid"; then echo "postrust  running  127.0.0.1:$CAPPED_REST_PORT (row cap $(sed -n 's/^max_rows=\([0-9]*\).*/\1/p' "$STACK_DIR/postrust-capped.conf" 2>/dev/null))"; else echo "postrust  stopped (capped)"; ok=1; fi
  if pid_alive "$STACK_DIR/nginx/nginx.pid"; then echo "api       running  $API_URL, capped $CAPPED_API_URL"; else echo "api       stopped"; ok=1; fi
  "$ROOT/scripts/mail-catcher.sh" status || ok=1
  mail_status || ok=1
  return $ok
}

cmd_env() {
  cat <<ENV
export SUPABASE_URL='$API_URL'
export SUPABASE_ANON_KEY='$ANON_KEY'
export SUPABASE_DB_URL='$DB_URL'
export SUPABASE_POOLER_URL='$POOLER_URL'
export MAILSYNC_CAPPED_URL='$CAPPED_API_URL'
export MAILSYNC_LOCAL_JWT_SECRET='$JWT_SECRET'
ENV
  mail_env
  "$ROOT/scripts/mail-catcher.sh" env
}

# Deletes a user the way Supabase Auth does (Dashboard, auth.admin.deleteUser):
# one transaction, connected as supabase_auth_admin, which holds no privilege
# in public; foreign-key cascades and the triggers they fire run from there.
cmd_delete_user() {
  local id="${1:-}" db="${2:-postgres}" out
  [[ "$id" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] \
    || die "usage: scripts/local-stack.sh delete-user UUID [DATABASE]"
  out="$(PGPASSWORD="$DB_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -v id="$id" -1 -tA \
    -h 127.0.0.1 -p "$DB_PORT" -U supabase_auth_admin -d "$db" 2>&1 <<'SQL'
delete from auth.users where id = :'id' returning id;
SQL
)" || die "Database error deleting user $id: $out"
  [ -n "$out" ] || die "user $id not found"
  log "deleted user $id (as supabase_auth_admin)"
}

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
  local now exp
  now="$(date +%s)"; exp=$((now + 3600))
  hs256 "$JWT_SECRET" "$(printf '{"aud":"authenticated","exp":%d,"iat":%d,"iss":"%s/auth/v1","sub":"%s","email":"%s","role":"authenticated","aal":"aal1","session_id":"%s","is_anonymous":false}' \
    "$exp" "$now" "$API_URL" "$sub" "$email" "$(cat /proc/sys/kernel/random/uuid)")"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  destroy) cmd_destroy ;;
  status) cmd_status ;;
  env) cmd_env ;;
  token) shift; cmd_token "$@" ;;
  delete-user) shift; cmd_delete_user "$@" ;;
  *) sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
