#!/usr/bin/env bash
# Makes sure PostgreSQL, MariaDB and Redis answer on loopback, starting (and if needed installing)
# whichever is down. Exports TEST_POSTGRES_URL / TEST_MYSQL_URL / TEST_REDIS_URL for the tests.
# Sourced by .ci/test; fails loudly when a service cannot be brought up.

need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then apt-get update -qq >/dev/null; need_apt_update=0; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# PostgreSQL: the machine's server on 5432 (trust), else our own throw-away cluster on 55432.
if psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432"
else
  echo "PostgreSQL on 5432 is not usable; starting a private instance on 55432." >&2
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
  PGBIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | tail -1)")
  PGDIR=/tmp/gpt-load-pg
  if ! [ -f "$PGDIR/data/PG_VERSION" ]; then
    install -d -o postgres -g postgres "$PGDIR"
    su postgres -c "$PGBIN/initdb -D $PGDIR/data -A trust -U postgres -E UTF8 --no-sync" >/dev/null
  fi
  su postgres -c "$PGBIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w start -o '-p 55432 -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off'" >/dev/null || true
  wait_for 30 psql -h 127.0.0.1 -p 55432 -U postgres -Atc 'select 1' || { echo "FATAL: PostgreSQL could not be started" >&2; exit 1; }
  psql -h 127.0.0.1 -p 55432 -U postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -p 55432 -U postgres -c 'create database test' >/dev/null
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:55432"
fi

# MariaDB/MySQL: the machine's server on 3306 (root, no password), else our own on 53306.
if command -v mariadb >/dev/null && mariadb -h 127.0.0.1 -P 3306 -uroot -e 'select 1' test >/dev/null 2>&1; then
  export TEST_MYSQL_URL="mysql://root@127.0.0.1:3306"
else
  echo "MariaDB on 3306 is not usable; starting a private instance on 53306." >&2
  command -v mariadbd >/dev/null || apt_install mariadb-server
  MDIR=/tmp/gpt-load-mariadb
  if ! [ -d "$MDIR/data/mysql" ]; then
    install -d -o mysql -g mysql "$MDIR"
    mariadb-install-db --user=mysql --datadir="$MDIR/data" --auth-root-authentication-method=normal --skip-test-db >/dev/null
  fi
  if ! mariadb-admin -uroot -S "$MDIR/sock" ping >/dev/null 2>&1; then
    (mariadbd --user=mysql --datadir="$MDIR/data" --socket="$MDIR/sock" --port=53306 --bind-address=127.0.0.1 \
      --pid-file="$MDIR/pid" --skip-log-bin --innodb-flush-log-at-trx-commit=0 --log-error="$MDIR/err.log" &)
  fi
  wait_for 60 mariadb-admin -uroot -S "$MDIR/sock" ping || { echo "FATAL: MariaDB could not be started" >&2; exit 1; }
  mariadb -uroot -S "$MDIR/sock" -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null
  export TEST_MYSQL_URL="mysql://root@127.0.0.1:53306"
fi

# Redis: the machine's server on 6379, else our own on 56379.
if command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; then
  export TEST_REDIS_URL="redis://127.0.0.1:6379"
else
  echo "Redis on 6379 is not usable; starting a private instance on 56379." >&2
  command -v redis-server >/dev/null || apt_install redis-server
  if [ "$(redis-cli -h 127.0.0.1 -p 56379 ping 2>/dev/null)" != PONG ]; then
    redis-server --port 56379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
  fi
  wait_for 30 sh -c '[ "$(redis-cli -h 127.0.0.1 -p 56379 ping)" = PONG ]' || { echo "FATAL: Redis could not be started" >&2; exit 1; }
  export TEST_REDIS_URL="redis://127.0.0.1:56379"
fi

echo "Services: postgres=${TEST_POSTGRES_URL} mysql=${TEST_MYSQL_URL} redis=${TEST_REDIS_URL}" >&2
