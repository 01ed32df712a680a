# Starts a throwaway PostgreSQL server for tests and benches: initdb into a temporary directory,
# listening only on a unix socket there (no TCP port to collide with), stopped on exit.
# Source it, then call pg_start; it exports PASSKEY_LINKS_DATABASE_URL. Extra server options
# (e.g. "-c default_transaction_isolation=serializable") come from PASSKEY_LINKS_PG_OPTIONS.
# Tests run it with fsync off (fast, not durable); PASSKEY_LINKS_PG_DURABLE=1 keeps fsync on, so
# every commit is flushed (what benchmarks measure).
# Installs Debian's postgresql package when no server binaries are found.

pg_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_start() {
  if [ -n "${PASSKEY_LINKS_DATABASE_URL:-}" ]; then
    echo "using the database at PASSKEY_LINKS_DATABASE_URL"
    return 0
  fi
  local bin
  if ! bin=$(pg_bindir); then
    echo "installing PostgreSQL (Debian package postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq postgresql >/dev/null
    fi
    bin=$(pg_bindir)
  fi
  PG_TMP=$(mktemp -d /tmp/passkey-links-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  local run=()
  # initdb refuses to run as root: run the server as the postgres system user then.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_TMP"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres -A trust --no-sync >/dev/null
  local durability="-c fsync=off"
  [ -n "${PASSKEY_LINKS_PG_DURABLE:-}" ] && durability="-c fsync=on -c synchronous_commit=on"
  "${run[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w -t 60 \
    -o "-k $PG_TMP -c listen_addresses='' $durability -c max_connections=300 ${PASSKEY_LINKS_PG_OPTIONS:-}" start >/dev/null
  trap pg_stop EXIT
  export PASSKEY_LINKS_DATABASE_URL="host=$PG_TMP user=postgres dbname=postgres"
  echo "throwaway PostgreSQL running on unix socket $PG_TMP ($durability)"
}

pg_stop() {
  [ -n "${PG_TMP:-}" ] || return 0
  local bin run=()
  bin=$(pg_bindir) || return 0
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
  PG_TMP=
}
