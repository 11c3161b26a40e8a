#!/usr/bin/env bash
# Load benchmark: the mock upstream hit directly, nginx as a plain reverse proxy in front of it,
# and gpt-load proxying to it while rotating keys. See bench/README.md.
#
#   bash bench/run.sh                      # 10 s per target, 64 connections, 2 wrk threads
#   DURATION=30 CONNECTIONS=128 bash bench/run.sh
#
# Environment knobs (all optional):
#   DURATION          seconds measured per target            (default 10)
#   WARMUP            seconds of warm-up per target           (default 2)
#   CONNECTIONS       wrk connections                         (default 64)
#   THREADS           wrk threads                             (default 2)
#   MOCK_WORKERS      worker threads of the mock upstream     (default 2)
#   NGINX_WORKERS     nginx worker_processes                  (default 2)
#   MAX_ERROR_RATE    allowed fraction of non-2xx responses, and separately of socket errors,
#                     per target before the run fails          (default 0.001 = 0.1 %)
#   CARGO_TARGET_DIR  cargo target dir                        (default /var/tmp/gpt-load-target)
#   SKIP_BUILD=1      use the existing release binaries as they are
#   KEEP_TMP=1        keep the temp dir (logs, configs) even on success
# All traffic goes to 127.0.0.1 only. Every process started here is stopped on exit.
set -euo pipefail

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
MOCK_WORKERS="${MOCK_WORKERS:-2}"
NGINX_WORKERS="${NGINX_WORKERS:-2}"
MAX_ERROR_RATE="${MAX_ERROR_RATE:-0.001}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gpt-load-target}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOCK_BIN="$CARGO_TARGET_DIR/release/gpt-load-mock-upstream"
GPT_LOAD_BIN="$CARGO_TARGET_DIR/release/gpt-load"

ADMIN_KEY="bench-admin-key-0123456789"
PROXY_KEY="sk-bench-proxy-key"
UPSTREAM_KEYS="sk-up-1,sk-up-2,sk-up-3"
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for v in DURATION WARMUP CONNECTIONS THREADS MOCK_WORKERS NGINX_WORKERS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
(( CONNECTIONS >= THREADS )) || die "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS)"

# ---------------------------------------------------------------- processes and cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpt-load-bench.XXXXXX")"
PIDS=()          # everything we started, in start order
NGINX_PID=""
NGINX_WORKER_PIDS=()

stop_pid() {     # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        # A zombie child still answers kill -0; reap it if it is ours.
        if [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)" == Z ]]; then break; fi
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)" != Z ]]; then
        echo "warning: pid $pid did not stop on SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    # Reverse start order: wrk / gpt-load / nginx before the mock they talk to.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    # nginx workers normally exit with their master; make sure none is left behind.
    for pid in "${NGINX_WORKER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done
    if (( rc != 0 )) || [[ "${KEEP_TMP:-0}" == 1 ]]; then
        echo "logs and configs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
ensure_pkg() {   # ensure_pkg COMMAND PACKAGE...
    local cmd="$1"; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 && return 0
    log "installing $* (for $cmd)"
    local sudo=""
    (( EUID == 0 )) || sudo="sudo"
    # Do not let package scripts start system services (e.g. the system nginx).
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y "$@" >"$TMP/apt.log" 2>&1; then
        $sudo apt-get update >>"$TMP/apt.log" 2>&1 || true
        $sudo apt-get install -y "$@" >>"$TMP/apt.log" 2>&1 || die "could not install $* (see $TMP/apt.log)"
    fi
}
ensure_pkg wrk wrk
ensure_pkg nginx nginx-light
ensure_pkg curl curl
command -v python3 >/dev/null 2>&1 || ensure_pkg python3 python3-minimal
NGINX="$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx)"

json_get() {     # json_get EXPR < json   (EXPR in jq syntax, only .a.b forms used)
    if command -v jq >/dev/null 2>&1; then
        jq -r "$1"
    else
        python3 -c '
import json, sys
v = json.load(sys.stdin)
for part in sys.argv[1].strip(".").split("."):
    v = v.get(part) if isinstance(v, dict) else None
print("null" if v is None else v)' "$1"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- build
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p gpt-load -p gpt-load-mock-upstream)
fi
[[ -x "$MOCK_BIN" ]] || die "missing $MOCK_BIN"
[[ -x "$GPT_LOAD_BIN" ]] || die "missing $GPT_LOAD_BIN"

# From here on nothing should pick up files (.env, data/) from the caller's directory.
cd "$TMP"

# ---------------------------------------------------------------- /proc sampling
CLK_TCK="$(getconf CLK_TCK)"

cpu_ticks() {    # cpu_ticks PID...: utime+stime summed over the given processes (all threads)
    local total=0 pid t
    for pid in "$@"; do
        # Fields after the ")" closing comm: $1 is field 3 (state), so utime (14) is $12, stime (15) $13.
        t="$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')"
        total=$((total + t))
    done
    echo "$total"
}

peak_rss_kib() { # peak_rss_kib PID...: VmHWM summed over the given processes
    local total=0 pid k
    for pid in "$@"; do
        k="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
        total=$((total + ${k:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------- wrk
write_lua() {    # write_lua FILE KEY
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d p50_us=%d p99_us=%d mean_us=%.1f max_us=%d\n",
        summary.requests, summary.duration, summary.bytes, e.status,
        e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
EOF
}

run_wrk() {      # run_wrk SECONDS LUA URL OUTFILE  (wrk runs in background so signals reach us)
    local pid
    wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${1}s" -s "$2" "$3" >"$4" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    unset 'PIDS[${#PIDS[@]}-1]'
    return "$rc"
}

check_one() {    # check_one NAME URL KEY: a single request must answer 200
    local code
    code="$(curl -sS -o "$TMP/check-$1.body" -w '%{http_code}' --max-time 10 \
        -H 'Content-Type: application/json' -H "Authorization: Bearer $3" \
        --data "$BODY" "$2" || true)"
    if [[ "$code" != 200 ]]; then
        echo "--- response body:" >&2
        head -c 2000 "$TMP/check-$1.body" >&2 || true
        echo >&2
        die "$1: sanity request to $2 answered HTTP '$code', expected 200"
    fi
}

# Results, one entry per target.
NAMES=(); RPS=(); P50=(); P99=(); CPU_US=(); CORES=(); RSS_MIB=(); NON2XX=(); SOCKERR=(); REQS=()
UP_CPU_US=()
FAILURES=()

measure() {      # measure NAME URL KEY "TARGET PIDS" "UPSTREAM PIDS"
    local name="$1" url="$2" key="$3" pids=($4) up_pids=($5)
    local lua="$TMP/wrk-$name.lua" out="$TMP/wrk-$name.out"
    write_lua "$lua" "$key"
    check_one "$name" "$url" "$key"

    log "$name: warm-up ${WARMUP}s"
    run_wrk "$WARMUP" "$lua" "$url" "$TMP/wrk-$name-warmup.out" || die "$name: wrk warm-up failed: $(cat "$TMP/wrk-$name-warmup.out")"

    log "$name: measuring ${DURATION}s, $CONNECTIONS connections, $THREADS threads -> $url"
    local t0 u0 t1 u1
    t0="$(cpu_ticks "${pids[@]}")"; u0="$(cpu_ticks "${up_pids[@]}")"
    run_wrk "$DURATION" "$lua" "$url" "$out" || die "$name: wrk failed: $(cat "$out")"
    t1="$(cpu_ticks "${pids[@]}")"; u1="$(cpu_ticks "${up_pids[@]}")"

    echo "----- wrk output: $name"
    cat "$out"

    local line
    line="$(grep '^BENCH ' "$out" | tail -n1)" || die "$name: no BENCH line in wrk output"
    local requests duration_us non2xx ec er ew et p50 p99
    requests="$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")"
    duration_us="$(sed -E 's/.* duration_us=([0-9]+).*/\1/' <<<"$line")"
    non2xx="$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$line")"
    ec="$(sed -E 's/.* err_connect=([0-9]+).*/\1/' <<<"$line")"
    er="$(sed -E 's/.* err_read=([0-9]+).*/\1/' <<<"$line")"
    ew="$(sed -E 's/.* err_write=([0-9]+).*/\1/' <<<"$line")"
    et="$(sed -E 's/.* err_timeout=([0-9]+).*/\1/' <<<"$line")"
    p50="$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")"
    p99="$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")"
    local sockerr=$((ec + er + ew + et))

    local rss
    rss="$(peak_rss_kib "${pids[@]}")"

    # All arithmetic in one awk call; prints the derived figures.
    local derived
    derived="$(awk -v req="$requests" -v dur="$duration_us" -v dt=$((t1 - t0)) -v du=$((u1 - u0)) \
        -v hz="$CLK_TCK" -v nup="${#up_pids[@]}" -v rss="$rss" 'BEGIN {
            rps = dur > 0 ? req / (dur / 1e6) : 0
            cpu = req > 0 ? (dt / hz) * 1e6 / req : 0
            cores = dur > 0 ? (dt / hz) / (dur / 1e6) : 0
            up = (nup > 0 && req > 0) ? sprintf("%.1f", (du / hz) * 1e6 / req) : "-"
            printf "%.0f %.1f %.2f %s %.1f\n", rps, cpu, cores, up, rss / 1024
        }')"
    local rps cpu cores up rss_mib
    read -r rps cpu cores up rss_mib <<<"$derived"

    NAMES+=("$name"); REQS+=("$requests"); RPS+=("$rps")
    P50+=("$(awk -v v="$p50" 'BEGIN { printf "%.2f ms", v / 1000 }')")
    P99+=("$(awk -v v="$p99" 'BEGIN { printf "%.2f ms", v / 1000 }')")
    CPU_US+=("$cpu"); CORES+=("$cores"); UP_CPU_US+=("$up"); RSS_MIB+=("$rss_mib")
    NON2XX+=("$non2xx"); SOCKERR+=("$sockerr (c$ec/r$er/w$ew/t$et)")

    echo "----- $name: requests=$requests req/s=$rps p50=${P50[-1]} p99=${P99[-1]} cpu=${cpu}us/req ($cores cores) peakRSS=${rss_mib}MiB non-2xx=$non2xx socket-errors=$sockerr (connect $ec, read $er, write $ew, timeout $et)"

    if (( requests == 0 )); then
        FAILURES+=("$name: wrk completed no requests")
    fi
    if awk -v n="$non2xx" -v r="$requests" -v m="$MAX_ERROR_RATE" 'BEGIN { exit !(r > 0 && n / r > m) }'; then
        FAILURES+=("$name: $non2xx non-2xx responses out of $requests (> $MAX_ERROR_RATE)")
    elif (( non2xx > 0 )); then
        echo "WARNING: $name had $non2xx non-2xx responses (under the $MAX_ERROR_RATE threshold)" >&2
    fi
    if awk -v n="$sockerr" -v r="$requests" -v m="$MAX_ERROR_RATE" 'BEGIN { exit !(r > 0 && n / r > m) }'; then
        FAILURES+=("$name: $sockerr socket errors out of $requests (> $MAX_ERROR_RATE)")
    elif (( sockerr > 0 )); then
        echo "WARNING: $name had $sockerr socket errors (under the $MAX_ERROR_RATE threshold)" >&2
    fi
}

wait_alive() {   # wait_alive PID NAME LOGFILE: fail if the process died
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2 || true; die "$2 exited prematurely (log: $3)"; }
}

# ---------------------------------------------------------------- machine and settings
CPU_MODEL="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
[[ -n "$CPU_MODEL" ]] || CPU_MODEL="$(lscpu 2>/dev/null | awk -F': *' '/Model name/ {print $2; exit}' || true)"
echo "## Machine"
echo "- nproc: $(nproc)"
echo "- CPU: ${CPU_MODEL:-unknown}"
echo "- kernel: $(uname -sr)"
echo "- memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- wrk: $(wrk -v 2>&1 | head -n1 || true)"
echo "- nginx: $("$NGINX" -v 2>&1 | head -n1)"
echo "- gpt-load: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'), release build from $CARGO_TARGET_DIR"
echo
echo "## Settings"
echo "- duration: ${DURATION}s measured per target, after a ${WARMUP}s warm-up"
echo "- wrk: --latency -t $THREADS -c $CONNECTIONS, POST non-streamed, body $BODY"
echo "- mock upstream: --any-key --no-record --workers $MOCK_WORKERS"
echo "- nginx: worker_processes $NGINX_WORKERS, access_log off, upstream keepalive 64, HTTP/1.1 to the upstream"
echo "- gpt-load: LOG_LEVEL=info (one access-log line per request, to a file), MAX_CONCURRENT_REQUESTS=10000, sqlite, 3 upstream keys rotated"
echo "- CPU via /proc/PID/stat utime+stime (CLK_TCK=$CLK_TCK), delta over the measured run only, divided by wrk's request count"
echo "- everything (wrk, mock, proxy) shares the same $(nproc) CPUs of this machine"
echo

# ---------------------------------------------------------------- mock upstream
log "starting mock upstream"
# Create the output files first: the background job opens its redirections only after the fork.
: >"$TMP/mock.out"; : >"$TMP/mock.err"; : >"$TMP/nginx.out"; : >"$TMP/error.log"; : >"$TMP/gpt-load.log"
"$MOCK_BIN" --port 0 --any-key --no-record --workers "$MOCK_WORKERS" >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_URL=""
for ((i = 0; i < 100; i++)); do
    wait_alive "$MOCK_PID" "mock upstream" "$TMP/mock.err"
    MOCK_URL="$(awk '/^LISTENING / {print $2; exit}' "$TMP/mock.out" 2>/dev/null || true)"
    [[ -n "$MOCK_URL" ]] && break
    sleep 0.1
done
[[ -n "$MOCK_URL" ]] || die "mock upstream did not print LISTENING within 10 s"
[[ "$MOCK_URL" == http://127.0.0.1:* ]] || die "mock upstream is not on 127.0.0.1: $MOCK_URL"
MOCK_HOSTPORT="${MOCK_URL#http://}"
log "mock upstream at $MOCK_URL (pid $MOCK_PID)"

# ---------------------------------------------------------------- nginx
NGINX_PORT="$(free_port)"
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<EOF
# Generated by bench/run.sh: a plain reverse proxy, nothing else.
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
pid $TMP/nginx.pid;
error_log $TMP/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path       $TMP/nginx/proxy;
    fastcgi_temp_path     $TMP/nginx/fastcgi;
    uwsgi_temp_path       $TMP/nginx/uwsgi;
    scgi_temp_path        $TMP/nginx/scgi;

    keepalive_requests 100000;

    upstream mock {
        server $MOCK_HOSTPORT;
        keepalive 64;
        keepalive_requests 100000;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
"$NGINX" -t -q -c "$TMP/nginx.conf" -p "$TMP" 2>"$TMP/nginx-t.log" || { cat "$TMP/nginx-t.log" >&2; die "nginx config test failed"; }
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" >"$TMP/nginx.out" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for ((i = 0; i < 100; i++)); do
    wait_alive "$NGINX_PID" nginx "$TMP/nginx.out"
    mapfile -t NGINX_WORKER_PIDS < <(pgrep -P "$NGINX_PID" || true)
    if (( ${#NGINX_WORKER_PIDS[@]} >= NGINX_WORKERS )) \
        && curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NGINX_PORT/"; then
        break
    fi
    sleep 0.1
done
(( ${#NGINX_WORKER_PIDS[@]} >= 1 )) || die "nginx has no worker processes"
log "nginx master $NGINX_PID, workers ${NGINX_WORKER_PIDS[*]}"

# ---------------------------------------------------------------- gpt-load
GL_PORT="$(free_port)"
log "starting gpt-load on 127.0.0.1:$GL_PORT"
# Clean environment: only the settings below (plus PATH/HOME) reach the service.
env -i PATH="$PATH" HOME="${HOME:-/}" \
    AUTH_KEY="$ADMIN_KEY" PORT="$GL_PORT" HOST=127.0.0.1 DATABASE_DSN="$TMP/bench.db" \
    LOG_LEVEL=info MAX_CONCURRENT_REQUESTS=10000 \
    "$GPT_LOAD_BIN" >"$TMP/gpt-load.log" 2>&1 &
GL_PID=$!
PIDS+=("$GL_PID")
GL="http://127.0.0.1:$GL_PORT"
deadline=$((SECONDS + 30))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GL/health" || true)" == 200 ]]; do
    wait_alive "$GL_PID" gpt-load "$TMP/gpt-load.log"
    (( SECONDS < deadline )) || { tail -n 50 "$TMP/gpt-load.log" >&2; die "gpt-load /health not 200 within 30 s"; }
    sleep 0.2
done

admin_post() {   # admin_post PATH JSON -> response body on stdout; dies unless code == 0
    local resp code
    resp="$(curl -sS --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_KEY" \
        -H 'Content-Type: application/json' --data "$2" "$GL$1")" || die "POST $1 failed"
    code="$(json_get .code <<<"$resp" 2>/dev/null || echo '?')"
    [[ "$code" == 0 ]] || die "POST $1 answered: $resp"
    printf '%s' "$resp"
}
GROUP_RESP="$(admin_post /api/groups "{\"name\":\"bench\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$MOCK_URL\",\"weight\":1}],\"proxy_keys\":\"$PROXY_KEY\"}")"
GROUP_ID="$(json_get .data.id <<<"$GROUP_RESP")"
[[ "$GROUP_ID" =~ ^[0-9]+$ ]] || die "no group id in: $GROUP_RESP"
admin_post /api/keys/add-multiple "{\"group_id\":$GROUP_ID,\"keys_text\":\"$UPSTREAM_KEYS\"}" >/dev/null
GL_URL="$GL/proxy/bench/v1/chat/completions"
# Keys may reach the pool asynchronously: wait until the proxy answers 200.
deadline=$((SECONDS + 15))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $PROXY_KEY" --data "$BODY" "$GL_URL" || true)" == 200 ]]; do
    wait_alive "$GL_PID" gpt-load "$TMP/gpt-load.log"
    (( SECONDS < deadline )) || break   # check_one below reports the failing answer
    sleep 0.2
done
log "gpt-load pid $GL_PID, group $GROUP_ID, proxy URL $GL_URL"

# ---------------------------------------------------------------- measurements
measure mock-direct "$MOCK_URL/v1/chat/completions" "sk-direct" "$MOCK_PID" ""
measure nginx "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "sk-up-1" "${NGINX_WORKER_PIDS[*]}" "$MOCK_PID"
measure gpt-load "$GL_URL" "$PROXY_KEY" "$GL_PID" "$MOCK_PID"

# Informational: did gpt-load spread the load over the three upstream keys? (counters may be
# flushed to the database asynchronously, so they can lag behind wrk's count.)
KEY_USAGE="$(curl -s --max-time 5 -H "Authorization: Bearer $ADMIN_KEY" \
    "$GL/api/keys?group_id=$GROUP_ID&page_size=100" | python3 -c '
import json, sys
try:
    items = json.load(sys.stdin)["data"]["items"]
    print(", ".join("%s=%s (%s)" % (k["key_value"], k["request_count"], k["status"]) for k in items))
except Exception as e:
    print("unavailable (%s)" % e)' 2>/dev/null || echo unavailable)"

# Did the service log problems during the run?
GL_WARN="$(grep -ciE '(^|[^a-z])(warn|error)([^a-z]|$)|panick' "$TMP/gpt-load.log" || true)"
GL_LINES="$(wc -l <"$TMP/gpt-load.log")"
NGINX_ERR="$(grep -cvE '^\s*$' "$TMP/error.log" 2>/dev/null || true)"

# ---------------------------------------------------------------- table
echo
echo "## Results (${DURATION}s per target, $CONNECTIONS connections, $THREADS wrk threads, $(nproc) CPUs)"
echo
echo "| target | req/s | p50 latency | p99 latency | CPU µs/request (target process) | CPU cores busy | peak RSS (VmHWM) | mock CPU µs/request | requests | non-2xx | socket errors (connect/read/write/timeout) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for i in "${!NAMES[@]}"; do
    label="${NAMES[i]}"
    case "$label" in
        nginx) label="nginx (sum of ${#NGINX_WORKER_PIDS[@]} workers)" ;;
    esac
    echo "| $label | ${RPS[i]} | ${P50[i]} | ${P99[i]} | ${CPU_US[i]} | ${CORES[i]} | ${RSS_MIB[i]} MiB | ${UP_CPU_US[i]} | ${REQS[i]} | ${NON2XX[i]} | ${SOCKERR[i]} |"
done
echo
echo "- gpt-load upstream key request_count (from GET /api/keys): $KEY_USAGE"
echo "- gpt-load log: $GL_LINES lines, $GL_WARN mentioning warn/error/panic; nginx error.log: ${NGINX_ERR:-0} lines"
if (( GL_WARN > 0 )); then
    echo "--- first warn/error lines of gpt-load.log:"
    grep -iE '(^|[^a-z])(warn|error)([^a-z]|$)|panick' "$TMP/gpt-load.log" | head -n 10 || true
fi
if (( ${NGINX_ERR:-0} > 0 )); then
    echo "--- nginx error.log:"
    head -n 10 "$TMP/error.log" || true
fi

if (( ${#FAILURES[@]} > 0 )); then
    echo
    for f in "${FAILURES[@]}"; do echo "FAIL: $f" >&2; done
    exit 1
fi
