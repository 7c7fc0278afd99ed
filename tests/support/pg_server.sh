#!/usr/bin/env bash
# Starts or stops the throwaway PostgreSQL server of the pg tests: Debian's
# postgresql binaries, a temporary data directory, a unix socket in it and a
# loopback port, run as an unprivileged user (the `postgres` system user when
# we are root). Writes the connection URL to $DIR/url.
#   pg_server.sh start DIR PORT     pg_server.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "pg_server: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }
as_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
  port=$3
  "$0" stop "$dir" 2>/dev/null || true
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_user "$bin/initdb" -D "$dir/data" -U troupe --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  as_user "$bin/createdb" -h "$dir" -p "$port" -U troupe troupe_test
  echo "postgresql://troupe@127.0.0.1:$port/troupe_test" >"$dir/url"
  echo "pg_server: $(cat "$dir/url")"
  ;;
stop)
  [ -d "$dir/data" ] && as_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  rm -rf "$dir"
  ;;
esac
