#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (TOOLCHAIN.md's recipe): its own directory and
# port on 127.0.0.1, no systemd, trust authentication for the role `tandem`, gone after `stop`.
#
#   eval "$(scripts/pg-cluster.sh start)"   # exports TANDEM_TEST_PG (a URL) and TANDEM_TEST_PG_DIR
#   scripts/pg-cluster.sh stop "$TANDEM_TEST_PG_DIR"
#
# Tests make a database of their own in it for each case. initdb refuses to run as root: as
# root the cluster runs as Debian's `postgres` user.
set -euo pipefail

bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
[ -n "$bin" ] || { echo "pg-cluster: PostgreSQL is not installed (make setup installs it)" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tandem-pg.XXXXXX")
  [ "$(id -u)" != 0 ] || chown postgres "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_owner "$bin/initdb" -D "$dir/pg" -A trust -U tandem -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # Enough connections for the pools of several server processes and the load harness.
  as_owner "$bin/pg_ctl" -D "$dir/pg" -l "$dir/log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null ||
    { cat "$dir/log" >&2; exit 1; }
  echo "export TANDEM_TEST_PG=postgres://tandem@127.0.0.1:$port/postgres TANDEM_TEST_PG_DIR=$dir"
  ;;
stop)
  dir=${2:?pg-cluster: stop needs the directory start made}
  [ -d "$dir/pg" ] && as_owner "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
