#!/bin/sh
# Runs PostgreSQL 15 for the example lab. On first start it initialises the
# data directory; the server itself always runs as the postgres user.
# Usage: postgres.sh DATA_DIR SOCKET_DIR PORT
set -eu
data=$1 sock=$2 port=$3
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
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -p "$port" -k "$sock" \
  -c listen_addresses=127.0.0.1
