#!/usr/bin/env bash
# How fast the logs page answers on a big table: fills `request_logs` with ROWS generated rows
# (default 10 million, spread over the last ROWS/4 seconds, 10 groups, 3 models, 5 % errors,
# 4 % retries), then times the admin API's `GET /api/logs` (newest 50 rows, and a few filters)
# through the real service, on SQLite and on PostgreSQL. See bench/README.md.
#
#   bash bench/logs_page.sh                 # both backends, 10 M rows each
#   ROWS=1000000 BACKENDS=sqlite bash bench/logs_page.sh
#
# Knobs: ROWS, BACKENDS ("sqlite postgres"), SAMPLES per query (default 30), PG_URL (server URL
# without database, default postgres://postgres@127.0.0.1:5432), CARGO_TARGET_DIR, SKIP_BUILD=1,
# KEEP_TMP=1, BIN (the binary to time, default the release build), COMPARE_BIN (a second binary,
# e.g. an older build, timed on the same generated table after the first). The PostgreSQL
# database is created for the run and dropped afterwards. After filling, the script also times
# what an exact total costs in SQL: COUNT(*) over the table against the sum of the per-hour
# counts the triggers keep (request_log_counts).
set -euo pipefail

ROWS="${ROWS:-10000000}"
BACKENDS="${BACKENDS:-sqlite postgres}"
SAMPLES="${SAMPLES:-30}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gpt-load-target}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$CARGO_TARGET_DIR/release/gpt-load}"
COMPARE_BIN="${COMPARE_BIN:-}"
AUTH="bench-admin-key-0123456789"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a positive integer"
[[ "$SAMPLES" =~ ^[1-9][0-9]*$ ]] || die "SAMPLES must be a positive integer"
for tool in curl python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

TMP="$(mktemp -d "${TMPDIR:-/var/tmp}/gpt-load-logs-bench.XXXXXX")"
SERVER_PID=""
PG_DB="bench_logs_$$"
PG_CREATED=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [[ -n "$PG_CREATED" ]]; then psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true; fi
    if [[ -z "${KEEP_TMP:-}" ]]; then rm -rf "$TMP"; else log "kept $TMP"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --quiet --bin gpt-load)
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or unset SKIP_BUILD)"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

start_server() {   # start_server DSN [BINARY]
    AUTH_KEY="$AUTH" DATABASE_DSN="$1" HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warn \
        "${2:-$BIN}" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the server exited"; }
        sleep 0.1
    done
    die "the server did not answer /health within 60 s"
}
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# The query mix: the page the UI opens, then the filters operators use most.
QUERIES=(
    "page=1&page_size=50"
    "page=2&page_size=50"
    "page=1&page_size=50&is_success=false"
    "page=1&page_size=50&group_name=group-3"
    "page=1&page_size=50&status_code=500"
    "page=1&page_size=50&model=gpt-4o-mini"
    "page=1&page_size=50&key_value=sk-bench-7"
)

measure() {   # measure LABEL: prints one table row per query
    local backend="$1" q
    for q in "${QUERIES[@]}"; do
        # One untimed call warms the page cache the way a user's first click would not; we
        # report the warm figures and the first (cold) call separately.
        local first
        first="$(curl -fsS -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $AUTH" "http://127.0.0.1:$PORT/api/logs?$q")"
        for _ in $(seq 1 "$SAMPLES"); do
            curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $AUTH" "http://127.0.0.1:$PORT/api/logs?$q"
        done >"$TMP/times"
        python3 - "$backend" "$q" "$first" "$TMP/times" <<'PY'
import statistics, sys
backend, query, first, path = sys.argv[1:]
t = sorted(float(x) * 1000 for x in open(path))
p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"| {backend} | `{query}` | {float(first)*1000:.1f} | {statistics.median(t):.1f} | {p95:.1f} | {t[-1]:.1f} |")
PY
    done
    # The total the page reports, to show the table really holds what we generated.
    curl -fsS -H "Authorization: Bearer $AUTH" "http://127.0.0.1:$PORT/api/logs?page=1&page_size=1" \
        | python3 -c 'import json,sys; p=json.load(sys.stdin)["data"]["pagination"]; print("  (%s: total_items reported = %s, exact = %s)" % (sys.argv[1], p["total_items"], p["total_exact"]), file=sys.stderr)' "$backend"
}

COLUMNS_SQL='id,timestamp,group_id,group_name,parent_group_id,parent_group_name,key_value,key_hash,model,is_success,source_ip,status_code,request_path,duration,error_message,user_agent,request_type,upstream_addr,is_stream,request_body'

# Rows carry 1,000 distinct plain-text keys with their real SHA-256 hashes: the service checks a
# sample of stored log keys at start (plain, or its own encryption) and refuses anything else.
key_table_sql() {
    python3 - <<'PY'
import hashlib
print("CREATE TEMP TABLE bench_keys (n INTEGER PRIMARY KEY, v TEXT NOT NULL, h TEXT NOT NULL);")
rows = []
for n in range(1000):
    v = f"sk-bench-{n}"
    rows.append(f"({n}, '{v}', '{hashlib.sha256(v.encode()).hexdigest()}')")
print("INSERT INTO bench_keys VALUES " + ", ".join(rows) + ";")
PY
}

fill_sqlite() {   # fill_sqlite FILE
    sqlite3 "$1" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
$(key_table_sql)
INSERT INTO request_logs ($COLUMNS_SQL)
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
SELECT printf('%08x-0000-4000-8000-%012x', x, x),
       strftime('%Y-%m-%d %H:%M:%f', unixepoch('now') - ($ROWS - x) * 0.25, 'unixepoch'),
       x % 10, 'group-' || (x % 10), 0, '', k.v, k.h,
       CASE x % 3 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'gpt-4o-mini' ELSE 'o3' END,
       x % 20 <> 0, '127.0.0.1', CASE WHEN x % 20 = 0 THEN 500 ELSE 200 END,
       '/proxy/group/v1/chat/completions', 100 + x % 900,
       CASE WHEN x % 20 = 0 THEN 'upstream error' ELSE '' END, 'bench',
       CASE WHEN x % 25 = 0 THEN 'retry' ELSE 'final' END, 'http://127.0.0.1:1', x % 2 = 0, ''
FROM c JOIN bench_keys k ON k.n = x % 1000;
-- gpt-load's log writer counts the rows it writes; rows inserted here are counted here.
INSERT INTO request_log_counts (hour, request_type, is_success, status_code, log_count)
SELECT strftime('%Y-%m-%d %H:00:00', "timestamp"), request_type, is_success, status_code, COUNT(*)
FROM request_logs WHERE true GROUP BY 1, 2, 3, 4
ON CONFLICT (hour, request_type, is_success, status_code)
DO UPDATE SET log_count = log_count + excluded.log_count;
ANALYZE;
SQL
}

fill_postgres() {   # fill_postgres URL
    psql -q -v ON_ERROR_STOP=1 "$1" <<SQL
INSERT INTO request_logs ($COLUMNS_SQL)
SELECT md5(x::text)::uuid::text,
       (now() AT TIME ZONE 'utc') - ($ROWS - x) * interval '250 milliseconds',
       x % 10, 'group-' || (x % 10), 0, '', 'sk-bench-' || (x % 1000),
       encode(sha256(('sk-bench-' || (x % 1000))::bytea), 'hex'),
       CASE x % 3 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'gpt-4o-mini' ELSE 'o3' END,
       x % 20 <> 0, '127.0.0.1', CASE WHEN x % 20 = 0 THEN 500 ELSE 200 END,
       '/proxy/group/v1/chat/completions', 100 + x % 900,
       CASE WHEN x % 20 = 0 THEN 'upstream error' ELSE '' END, 'bench',
       CASE WHEN x % 25 = 0 THEN 'retry' ELSE 'final' END, 'http://127.0.0.1:1', x % 2 = 0, ''
FROM generate_series(1, $ROWS) AS x;
VACUUM ANALYZE request_logs;
SQL
}

# count_cost BACKEND DSN: the best of 3 runs of an exact COUNT(*) and of the counts-table sum.
count_cost() {
    local backend="$1" dsn="$2" q
    for q in "SELECT COUNT(*) FROM request_logs" \
             "SELECT SUM(log_count) FROM request_log_counts" \
             "SELECT COUNT(*) FROM request_logs WHERE status_code = 500" \
             "SELECT SUM(log_count) FROM request_log_counts WHERE status_code = 500"; do
        local best="" n
        for _ in 1 2 3; do
            local s e
            s=$(date +%s%N)
            if [[ "$backend" == sqlite ]]; then n=$(sqlite3 "$dsn" "$q"); else n=$(psql -qtA "$dsn" -c "$q"); fi
            e=$(date +%s%N)
            local ms=$(( (e - s) / 1000000 ))
            if [[ -z "$best" || "$ms" -lt "$best" ]]; then best=$ms; fi
        done
        echo "| $backend | \`$q\` | $n | $best |"
    done
}

COUNTS="$TMP/counts.md"
{
    echo "| backend | query | result | best of 3, ms (client start included) |"
    echo "|---|---|---:|---:|"
} >"$COUNTS"

RESULTS="$TMP/results.md"
{
    echo "| backend | query | first call ms | p50 ms | p95 ms | max ms |"
    echo "|---|---|---:|---:|---:|---:|"
} >"$RESULTS"

for backend in $BACKENDS; do
    case "$backend" in
        sqlite)
            command -v sqlite3 >/dev/null || die "sqlite3 is required (apt-get install sqlite3)"
            dsn="$TMP/logs.db"
            log "sqlite: creating the schema"
            start_server "$dsn"; stop_server
            log "sqlite: generating $ROWS rows"
            SECONDS=0; fill_sqlite "$dsn"; log "sqlite: filled in ${SECONDS}s ($(du -h "$dsn" | cut -f1))"
            ;;
        postgres)
            command -v psql >/dev/null || die "psql is required"
            psql -q "$PG_URL/postgres" -c "CREATE DATABASE $PG_DB" >/dev/null; PG_CREATED=1
            dsn="$PG_URL/$PG_DB"
            log "postgres: creating the schema"
            start_server "$dsn"; stop_server
            log "postgres: generating $ROWS rows"
            SECONDS=0; fill_postgres "$dsn"; log "postgres: filled in ${SECONDS}s"
            ;;
        *) die "unknown backend '$backend' (sqlite, postgres)";;
    esac
    log "$backend: timing exact counts in SQL"
    count_cost "$backend" "$dsn" >>"$COUNTS"
    start_server "$dsn"
    log "$backend: timing GET /api/logs ($SAMPLES samples per query)"
    measure "$backend" >>"$RESULTS"
    stop_server
    if [[ -n "$COMPARE_BIN" ]]; then
        start_server "$dsn" "$COMPARE_BIN"
        log "$backend: timing GET /api/logs with $COMPARE_BIN"
        measure "$backend ($(basename "$COMPARE_BIN"))" >>"$RESULTS"
        stop_server
    fi
    if [[ "$backend" == sqlite ]]; then rm -f "$TMP"/logs.db*; fi
    if [[ "$backend" == postgres ]]; then psql -q "$PG_URL/postgres" -c "DROP DATABASE $PG_DB" >/dev/null; PG_CREATED=""; fi
done

echo
echo "GET /api/logs on $ROWS request_logs rows (through the service, curl time_total):"
cat "$RESULTS"
echo
echo "An exact total in SQL on $ROWS rows:"
cat "$COUNTS"
