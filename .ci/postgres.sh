#!/usr/bin/env bash
# Installs (Debian's postgresql) and starts a PostgreSQL server on 127.0.0.1:5432 with a `test` database that
# the suite reaches as user postgres without a password (trust on loopback only: a CI machine). Idempotent:
# a running server is left as it is. Exits non-zero when the server does not come up.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql
fi
version="$(ls /usr/lib/postgresql | sort -V | tail -1)"

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ ! -d "/etc/postgresql/$version/main" ]; then
    pg_createcluster "$version" main --port 5432
  fi
  conf="/etc/postgresql/$version/main"
  hba="$conf/pg_hba.conf"
  if ! grep -q '^# feedback-ci' "$hba"; then
    # first match wins in pg_hba.conf: the trust lines go on top
    { echo '# feedback-ci: the test suite connects as postgres over loopback without a password'
      echo 'host all all 127.0.0.1/32 trust'
      echo 'host all all ::1/128 trust'
      cat "$hba"; } > "$hba.new"
    mv "$hba.new" "$hba"
    chown postgres:postgres "$hba"
  fi
  mkdir -p "$conf/conf.d"
  # durability is not what CI tests of the database measure; these make the suite's many commits cheap
  printf "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n" \
    > "$conf/conf.d/feedback-ci.conf"
  chown -R postgres:postgres "$conf/conf.d"
  pg_ctlcluster "$version" main start || { tail -n 30 "/var/log/postgresql/postgresql-$version-main.log" >&2; exit 1; }
fi

for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "FAIL: PostgreSQL did not start on 127.0.0.1:5432" >&2
  exit 1
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c 'create database test'
fi
psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null
echo "PostgreSQL $version on 127.0.0.1:5432, database test: ready"
