#!/usr/bin/env bash
# Installs what the local stack needs and the machine lacks; safe to re-run.
#   - PostgreSQL server binaries (Debian's postgresql package)
#   - nginx (Debian's nginx-light), the reverse proxy giving the Supabase URL layout,
#     with its perl module (libnginx-mod-http-perl) to read '+' in query strings
#     as a space, as PostgREST does
#   - pgbouncer (Debian's), the transaction-mode pooler (Supavisor's port 6543 on hosted)
#   - Node.js and npm (Debian's, when the machine has none) for the supabase-js tests
#   - openssl, curl (signing local tokens, health checks), patch (the REST
#     server's patches)
#   - Postfix (the stack's mail relay: DSN, local delivery, real bounces) and
#     Dovecot's IMAP server (the bounce mailbox); Debian's packages, installed
#     with the debconf answer "No configuration", their system services
#     stopped and disabled: the stack runs private instances on its own ports
#     and ports 25, 143 and 993 stay free.
#   - postrust-server 3.1.0, the PostgREST-compatible REST server, built once
#     per machine (with scripts/postrust/*.patch) into a cache directory named
#     after its version and patches, and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

POSTRUST_VERSION=3.1.0
CACHE_DIR="${MAILSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailsync}"
# Built from the published source with the patches of scripts/postrust/,
# into a directory named after them (scripts/postrust/README.md).
POSTRUST_ROOT="$CACHE_DIR/postrust-$POSTRUST_VERSION-$(scripts/postrust/id)"
POSTRUST_BIN="$POSTRUST_ROOT/bin/postrust"

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  done
  return 1
}

missing=()
pg_bindir >/dev/null || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_perl_module.so ] || missing+=(libnginx-mod-http-perl)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v patch >/dev/null || missing+=(patch)
[ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
      | as_root debconf-set-selections
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  # The Debian package starts nginx's default site on port 80; the stack
  # runs its own nginx with its own configuration, so the service is stopped.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    as_root sh -c 'command -v service >/dev/null && service nginx stop >/dev/null 2>&1 || true'
  fi
  # Likewise the package's own pgbouncer service (port 6432): the stack runs
  # its own, on its own port.
  if [[ " ${missing[*]} " == *" pgbouncer "* ]]; then
    as_root sh -c 'command -v service >/dev/null && service pgbouncer stop >/dev/null 2>&1 || true'
  fi
fi

# The system's own Postfix and Dovecot never run (a package may start them,
# and a reboot would): the stack starts private instances on loopback ports
# of its own; ports 25, 143 and 993 stay free.
for svc in postfix dovecot; do
  [ -e "/etc/init.d/$svc" ] || continue
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    as_root sh -c "service $svc stop >/dev/null 2>&1; update-rc.d $svc disable >/dev/null 2>&1; true"
  fi
done

if [ -x "$POSTRUST_BIN" ]; then
  log "postrust $POSTRUST_VERSION: cached at $POSTRUST_BIN"
else
  log "building postrust-server $POSTRUST_VERSION with scripts/postrust/*.patch once for this machine (about 5 minutes on 2 cores)"
  mkdir -p "$CACHE_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # The published sources of the server and of the engine the patches
  # change: fetched by cargo into its registry cache, then unpacked here.
  mkdir -p "$work/fetch/src"
  printf '[package]\nname = "postrust-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\npostrust-server = "=%s"\npostrust-engine = "=%s"\n' \
    "$POSTRUST_VERSION" "$POSTRUST_VERSION" > "$work/fetch/Cargo.toml"
  : > "$work/fetch/src/lib.rs"
  (cd "$work/fetch" && cargo fetch --quiet)
  registry="${CARGO_HOME:-$HOME/.cargo}/registry"
  for name in postrust-server postrust-engine; do
    crate="$(ls "$registry"/cache/*/"$name-$POSTRUST_VERSION".crate 2>/dev/null | head -n1 || true)"
    [ -n "$crate" ] || { log "$name $POSTRUST_VERSION is not in the cargo registry cache after cargo fetch"; exit 1; }
    tar -xzf "$crate" -C "$work" && mv "$work/$name-$POSTRUST_VERSION" "$work/$name"
  done
  for patch in scripts/postrust/*.patch; do
    patch --quiet -p1 -d "$work/postrust-engine" < "$patch" || { log "$patch does not apply"; exit 1; }
  done
  printf '\n[patch.crates-io]\npostrust-engine = { path = "../postrust-engine" }\n' >> "$work/postrust-server/Cargo.toml"
  # The crate's lock file, with the engine from the patched source and
  # webpki-roots moved from 1.0.11 (which some registry mirrors do not
  # carry) to the previous patch release; everything else as published.
  (cd "$work/postrust-server" && cargo update --quiet -p webpki-roots --precise 1.0.10)
  (cd "$work/postrust-server" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release --locked --bin postrust)
  mkdir -p "$POSTRUST_ROOT/bin"
  install -m 755 "$work/target/release/postrust" "$POSTRUST_BIN.tmp"
  mv -f "$POSTRUST_BIN.tmp" "$POSTRUST_BIN"
  rm -rf "$work"
  trap - EXIT
  log "postrust installed at $POSTRUST_BIN"
fi
