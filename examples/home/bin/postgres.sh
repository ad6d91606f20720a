#!/bin/sh
# Runs PostgreSQL 15 for the example lab; the server always runs as the
# postgres user. On first start (an empty data directory) it initialises the
# cluster and then either loads DUMP_FILE, when there is one (a restore, as in
# a DR drill), or creates the table hearth_canary with one row, which the
# drill's canary query looks for.
# Usage: postgres.sh DATA_DIR SOCKET_DIR PORT [DUMP_FILE]
set -eu
data=$1 sock=$2 port=$3 dump=${4:-}
bin=/usr/lib/postgresql/15/bin
mkdir -p "$sock"
chown postgres:postgres "$data" "$sock"
chmod 0700 "$data"
if ! runuser -u postgres -- test -w "$data"; then
  echo "error: the postgres user cannot reach $data; make its parent directories" \
       "traversable (chmod o+x) or keep the lab somewhere else" >&2
  exit 1
fi
if [ ! -s "$data/PG_VERSION" ]; then
  echo "initialising a new database cluster in $data"
  runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  # A server on the socket only, for the first load; the real one starts below.
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -w -s -l "$sock/first-start.log" \
    -o "-c listen_addresses='' -k $sock -p $port" start
  psql="psql -q -v ON_ERROR_STOP=1 -h $sock -p $port -U postgres -d postgres"
  if [ -n "$dump" ] && [ -s "$dump" ]; then
    echo "loading $dump"
    $psql -f "$dump" >/dev/null
  else
    $psql -c "create table hearth_canary (id int primary key, note text not null);
              insert into hearth_canary values (1, 'hearth-canary')"
  fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -w -s -m fast stop
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -p "$port" -k "$sock" \
  -c listen_addresses=127.0.0.1
