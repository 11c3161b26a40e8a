#!/usr/bin/env bash
# What request logging costs: gpt-load at a fixed rate (default 500 req/s for 10 s, `hey -q`)
# against the mock upstream, with request logging off (ENABLE_REQUEST_LOGS=false), on with rows
# held up to a minute (REQUEST_LOG_MAX_DELAY_MS=60000: the old default timing, flushed every 500
# records or once a minute), on with the default delay (each row written within 1 s), and on with
# request_log_write_interval_minutes=0 (each batch written to SQLite at once). The mock hit
# directly at the same rate is the baseline. See bench/README.md.
#
#   bash bench/logging.sh
#   RATE=1000 DURATION=20 SKIP_BUILD=1 bash bench/logging.sh
#
# Knobs: RATE (req/s, default 500), DURATION (s, default 10), CONNECTIONS (default 50; the rate
# is split evenly over them), CARGO_TARGET_DIR, SKIP_BUILD=1, KEEP_TMP=1.
set -euo pipefail

RATE="${RATE:-500}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gpt-load-target}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOCK_BIN="$CARGO_TARGET_DIR/release/gpt-load-mock-upstream"
GL_BIN="$CARGO_TARGET_DIR/release/gpt-load"
ADMIN_KEY="bench-admin-key-0123456789"
PROXY_KEY="sk-bench-proxy-key"
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
for v in RATE DURATION CONNECTIONS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
(( RATE % CONNECTIONS == 0 )) || die "RATE ($RATE) must be a multiple of CONNECTIONS ($CONNECTIONS): hey limits each connection"
PER_CONN=$((RATE / CONNECTIONS))

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpt-load-logbench.XXXXXX")"
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if [[ -z "${KEEP_TMP:-}" ]]; then rm -rf "$TMP"; else log "kept $TMP"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

if ! command -v hey >/dev/null; then
    sudo=""; (( EUID == 0 )) || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y hey >"$TMP/apt.log" 2>&1 \
        || { $sudo apt-get update >>"$TMP/apt.log" 2>&1; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y hey >>"$TMP/apt.log" 2>&1; } \
        || die "could not install hey (see $TMP/apt.log)"
fi
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet -p gpt-load -p gpt-load-mock-upstream)
fi
[[ -x "$MOCK_BIN" && -x "$GL_BIN" ]] || die "release binaries missing in $CARGO_TARGET_DIR"
cd "$TMP"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
CLK_TCK="$(getconf CLK_TCK)"

"$MOCK_BIN" --port 0 --any-key --no-record --workers 2 >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!; PIDS+=("$MOCK_PID")
MOCK_URL=""
for _ in $(seq 1 100); do
    MOCK_URL="$(awk '/^LISTENING / {print $2; exit}' "$TMP/mock.out" 2>/dev/null || true)"
    [[ -n "$MOCK_URL" ]] && break; sleep 0.1
done
[[ -n "$MOCK_URL" ]] || die "the mock upstream did not start"

GL_PID=""
start_gpt_load() {   # start_gpt_load NAME ENABLE_REQUEST_LOGS WRITE_INTERVAL_MINUTES MAX_DELAY_MS
    local port; port="$(free_port)"
    env -i PATH="$PATH" HOME="${HOME:-/}" AUTH_KEY="$ADMIN_KEY" PORT="$port" HOST=127.0.0.1 \
        DATABASE_DSN="$TMP/$1.db" LOG_LEVEL=warn MAX_CONCURRENT_REQUESTS=10000 ENABLE_REQUEST_LOGS="$2" \
        REQUEST_LOG_MAX_DELAY_MS="$4" \
        "$GL_BIN" >"$TMP/$1.log" 2>&1 &
    GL_PID=$!; PIDS+=("$GL_PID")
    GL="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do curl -fsS "$GL/health" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$GL/health" >/dev/null || { cat "$TMP/$1.log" >&2; die "$1: gpt-load did not start"; }
    local auth=(-H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json')
    curl -fsS "${auth[@]}" -X PUT "$GL/api/settings" --data "{\"request_log_write_interval_minutes\":$3}" >/dev/null
    local gid
    gid="$(curl -fsS "${auth[@]}" "$GL/api/groups" --data "{\"name\":\"bench\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$MOCK_URL\",\"weight\":1}],\"proxy_keys\":\"$PROXY_KEY\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')"
    curl -fsS "${auth[@]}" "$GL/api/keys/add-multiple" --data "{\"group_id\":$gid,\"keys_text\":\"sk-up-1,sk-up-2,sk-up-3\"}" >/dev/null
    URL="$GL/proxy/bench/v1/chat/completions"
    for _ in $(seq 1 100); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PROXY_KEY" -H 'Content-Type: application/json' --data "$BODY" "$URL")" == 200 ]] && return 0
        sleep 0.1
    done
    die "$1: the proxy did not answer 200"
}

ROWS=()
run_hey() {   # run_hey NAME URL KEY PID
    local name="$1" url="$2" key="$3" pid="$4" out="$TMP/hey-$1.txt"
    hey -z 2s -c "$CONNECTIONS" -q "$PER_CONN" -m POST -T application/json -H "Authorization: Bearer $key" -d "$BODY" "$url" >/dev/null
    local t0 t1; t0="$(cpu_ticks "$pid")"
    hey -z "${DURATION}s" -c "$CONNECTIONS" -q "$PER_CONN" -m POST -T application/json -H "Authorization: Bearer $key" -d "$BODY" "$url" >"$out"
    t1="$(cpu_ticks "$pid")"
    ROWS+=("$(python3 - "$name" "$out" $((t1 - t0)) "$CLK_TCK" <<'PY'
import re, sys
name, path, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
dist = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%+ in ([\d.]+) secs", text)}
codes = dict((int(c), int(n)) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
total = sum(codes.values())
ok = codes.get(200, 0)
mean = float(re.search(r"Average:\s+([\d.]+) secs", text).group(1)) * 1000
cpu_us = ticks / hz * 1e6 / total if total else 0
print(f"| {name} | {rps:.0f} | {mean:.2f} | {dist.get(50, 0):.2f} | {dist.get(90, 0):.2f} | {dist.get(99, 0):.2f} | {cpu_us:.0f} | {ok}/{total} |")
PY
)")
    log "$name done"
}

run_hey "mock upstream direct" "$MOCK_URL/v1/chat/completions" sk-direct "$MOCK_PID"
start_gpt_load logs-off false 1 1000
run_hey "gpt-load, request logs off" "$URL" "$PROXY_KEY" "$GL_PID"
kill -TERM "$GL_PID"; wait "$GL_PID" 2>/dev/null || true
start_gpt_load logs-minute true 1 60000
run_hey "gpt-load, logs on (held up to a minute)" "$URL" "$PROXY_KEY" "$GL_PID"
kill -TERM "$GL_PID"; wait "$GL_PID" 2>/dev/null || true
start_gpt_load logs-on true 1 1000
run_hey "gpt-load, logs on (within 1 s, default)" "$URL" "$PROXY_KEY" "$GL_PID"
kill -TERM "$GL_PID"; wait "$GL_PID" 2>/dev/null || true
start_gpt_load logs-immediate true 0 1000
run_hey "gpt-load, logs on (written at once)" "$URL" "$PROXY_KEY" "$GL_PID"
kill -TERM "$GL_PID"; wait "$GL_PID" 2>/dev/null || true
# The rows of the last run must all be there: the logging we measured really happened.
STORED="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from request_logs").fetchone()[0])' "$TMP/logs-immediate.db")"

echo
echo "Fixed rate $RATE req/s for ${DURATION}s ($CONNECTIONS connections × $PER_CONN req/s), non-streamed, SQLite, $(nproc) CPUs shared by hey, mock and proxy:"
echo
echo "| target | req/s | mean ms | p50 ms | p90 ms | p99 ms | CPU µs/request (target process) | 200 / all |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Rows stored by the written-at-once run (warm-up + measured requests + setup): $STORED"
