#!/usr/bin/env bash
# Load benchmark, side by side in one run: the mock upstream hit directly, nginx as a plain
# keep-alive reverse proxy rotating three keys (the floor), and gpt-load with request logging on
# and off. Measures max throughput and CPU per request (wrk), latency at fixed rates with
# coordinated-omission correction (oha), SSE time to first and last byte, and memory (idle,
# after load, with 100,000 keys). See bench/README.md.
#
#   bash bench/run.sh                      # ~4 minutes after the build
#   DURATION=30 CONNECTIONS=128 bash bench/run.sh
#   SMOKE=1 bash bench/run.sh              # CI: a few seconds per phase, checks it works
#
# Environment knobs (all optional):
#   DURATION          seconds measured per target at max load (default 10)
#   WARMUP            seconds of warm-up per target           (default 2)
#   CONNECTIONS       wrk connections                         (default 64)
#   THREADS           wrk threads                             (default 2)
#   RATES             fixed rates for the latency runs, req/s (default "500 50")
#   RATE_DURATION     seconds per fixed-rate run              (default 10)
#   SSE_REQUESTS      streamed requests per target            (default 100)
#   BIG_KEYS          keys imported for the memory figure     (default 100000)
#   MOCK_WORKERS      worker threads of the mock upstream     (default 2)
#   NGINX_WORKERS     nginx worker_processes                  (default 2)
#   MAX_ERROR_RATE    allowed fraction of non-2xx responses, and separately of socket errors,
#                     per target before the run fails          (default 0.001 = 0.1 %)
#   PROFILE           release or debug binaries               (default release)
#   CARGO_TARGET_DIR  cargo target dir                        (default /var/tmp/gpt-load-target)
#   TOOLS_DIR         where oha is installed if missing       (default /var/tmp/gpt-load-tools)
#   SMOKE=1           short everything (1 s runs, 5 streams, 2,000 keys): checks the script works
#   SKIP_BUILD=1      use the existing binaries as they are
#   BIN_DIR           take gpt-load and the mock from this directory (implies SKIP_BUILD=1)
#   BEFORE_BIN        an older gpt-load binary, measured in the same run as "gpt-load-before"
#                     (logging on), for before/after figures from one run
#   KEEP_TMP=1        keep the temp dir (logs, configs) even on success
# All traffic goes to 127.0.0.1 only. Every process started here is stopped on exit.
set -euo pipefail

if [[ "${SMOKE:-0}" == 1 ]]; then
    : "${DURATION:=1}" "${WARMUP:=1}" "${RATES:=50}" "${RATE_DURATION:=1}" "${SSE_REQUESTS:=5}"
    : "${BIG_KEYS:=2000}"
fi
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
RATES="${RATES:-500 50}"
RATE_DURATION="${RATE_DURATION:-10}"
SSE_REQUESTS="${SSE_REQUESTS:-100}"
BIG_KEYS="${BIG_KEYS:-100000}"
MOCK_WORKERS="${MOCK_WORKERS:-2}"
NGINX_WORKERS="${NGINX_WORKERS:-2}"
MAX_ERROR_RATE="${MAX_ERROR_RATE:-0.001}"
PROFILE="${PROFILE:-release}"
TOOLS_DIR="${TOOLS_DIR:-/var/tmp/gpt-load-tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gpt-load-target}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ "$PROFILE" == release || "$PROFILE" == debug ]] || { echo "FAIL: PROFILE must be release or debug" >&2; exit 1; }
# BIN_DIR: take both binaries from there as they are (no build).
if [[ -n "${BIN_DIR:-}" ]]; then SKIP_BUILD=1; fi
BIN_DIR="${BIN_DIR:-$CARGO_TARGET_DIR/$PROFILE}"
MOCK_BIN="$BIN_DIR/gpt-load-mock-upstream"
GPT_LOAD_BIN="$BIN_DIR/gpt-load"

ADMIN_KEY="bench-admin-key-0123456789"
PROXY_KEY="sk-bench-proxy-key"
UPSTREAM_KEYS="sk-up-1,sk-up-2,sk-up-3"
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
STREAM_BODY='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}'
# Streamed answers: 20 content events 5 ms apart (non-streamed answers are not delayed).
STREAM_CHUNKS=20
STREAM_INTERVAL_MS=5

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for v in DURATION WARMUP CONNECTIONS THREADS RATE_DURATION SSE_REQUESTS BIG_KEYS MOCK_WORKERS NGINX_WORKERS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
(( CONNECTIONS >= THREADS )) || die "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS)"
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "RATES must be positive integers, got '$RATES'"; done

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
# oha sends at a fixed rate and corrects for coordinated omission (--latency-correction); it is not
# packaged by Debian, so it comes from crates.io, built once into TOOLS_DIR.
OHA="$(command -v oha || true)"
[[ -n "$OHA" ]] || OHA="$TOOLS_DIR/bin/oha"
if [[ ! -x "$OHA" ]]; then
    log "installing oha from crates.io into $TOOLS_DIR (once)"
    CARGO_TARGET_DIR="$TOOLS_DIR/build" cargo install --quiet --locked --root "$TOOLS_DIR" oha --version "^1" \
        >"$TMP/oha-install.log" 2>&1 || { tail -n 20 "$TMP/oha-install.log" >&2; die "could not install oha"; }
    rm -rf "$TOOLS_DIR/build"
fi
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
    log "building $PROFILE binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    flag=(); [[ "$PROFILE" == release ]] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" -p gpt-load -p gpt-load-mock-upstream)
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

status_kib() {   # status_kib FIELD PID...: a /proc/PID/status field (VmHWM, VmRSS) summed
    local field="$1" total=0 pid k
    shift
    for pid in "$@"; do
        k="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status")"
        total=$((total + ${k:-0}))
    done
    echo "$total"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- wrk: max throughput
write_lua() {    # write_lua FILE KEY
    cat >"$1" <<LUA
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
LUA
}

run_bg() {       # run_bg OUTFILE CMD...: runs CMD in the background (so signals reach us), waits
    local out="$1" pid rc=0
    shift
    "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
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

settle() {       # settle: wait (up to 60 s) until every gpt-load is idle: a logging instance writes
                 # the rows of a max-load run for a while after it, and that would land in the next
                 # target's figures (it shares the CPUs)
    local deadline=$((SECONDS + 60)) before after
    while (( SECONDS < deadline )); do
        before="$(cpu_ticks "${GL_PIDS[@]}")"
        sleep 0.5
        after="$(cpu_ticks "${GL_PIDS[@]}")"
        (( after - before <= 1 )) && return 0
    done
    echo "warning: gpt-load still busy after 60 s of waiting" >&2
}

too_many() {     # too_many COUNT TOTAL: COUNT is over MAX_ERROR_RATE of TOTAL
    awk -v n="$1" -v r="$2" -v m="$MAX_ERROR_RATE" 'BEGIN { exit !(r > 0 && n / r > m) }'
}

# Results per target, in associative arrays keyed by target name.
declare -A RPS P99MAX CPU_US CORES PEAK_MIB UP_CPU_US REQS NON2XX SOCKERR
declare -A FIXED SSE RSS_IDLE RSS_AFTER
FAILURES=()

measure_max() {  # measure_max NAME URL KEY "TARGET PIDS" "UPSTREAM PIDS"
    local name="$1" url="$2" key="$3" pids=($4) up_pids=($5)
    local lua="$TMP/wrk-$name.lua" out="$TMP/wrk-$name.out"
    write_lua "$lua" "$key"
    check_one "$name" "$url" "$key"
    settle

    log "$name: warm-up ${WARMUP}s"
    run_bg "$TMP/wrk-$name-warmup.out" wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" -s "$lua" "$url" \
        || die "$name: wrk warm-up failed: $(cat "$TMP/wrk-$name-warmup.out")"

    log "$name: max load ${DURATION}s, $CONNECTIONS connections, $THREADS threads -> $url"
    local t0 u0 t1 u1
    t0="$(cpu_ticks "${pids[@]}")"; u0="$(cpu_ticks "${up_pids[@]}")"
    run_bg "$out" wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" -s "$lua" "$url" \
        || die "$name: wrk failed: $(cat "$out")"
    t1="$(cpu_ticks "${pids[@]}")"; u1="$(cpu_ticks "${up_pids[@]}")"

    local line
    line="$(grep '^BENCH ' "$out" | tail -n1)" || die "$name: no BENCH line in wrk output"
    field() { sed -E "s/.* $1=([0-9.]+).*/\\1/" <<<"$line"; }
    local requests duration_us non2xx p99 sockerr
    requests="$(field requests)"; duration_us="$(field duration_us)"; non2xx="$(field non2xx)"
    p99="$(field p99_us)"
    sockerr=$(( $(field err_connect) + $(field err_read) + $(field err_write) + $(field err_timeout) ))

    local derived
    derived="$(awk -v req="$requests" -v dur="$duration_us" -v dt=$((t1 - t0)) -v du=$((u1 - u0)) \
        -v hz="$CLK_TCK" -v nup="${#up_pids[@]}" 'BEGIN {
            rps = dur > 0 ? req / (dur / 1e6) : 0
            cpu = req > 0 ? (dt / hz) * 1e6 / req : 0
            cores = dur > 0 ? (dt / hz) / (dur / 1e6) : 0
            up = (nup > 0 && req > 0) ? sprintf("%.1f", (du / hz) * 1e6 / req) : "-"
            printf "%.0f %.1f %.2f %s\n", rps, cpu, cores, up
        }')"
    read -r RPS[$name] CPU_US[$name] CORES[$name] UP_CPU_US[$name] <<<"$derived"
    REQS[$name]="$requests"; NON2XX[$name]="$non2xx"; SOCKERR[$name]="$sockerr"
    P99MAX[$name]="$(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }')"
    PEAK_MIB[$name]="$(mib "$(status_kib VmHWM "${pids[@]}")")"
    echo "----- $name: requests=$requests req/s=${RPS[$name]} p99=${P99MAX[$name]} ms cpu=${CPU_US[$name]} µs/req (${CORES[$name]} cores) non-2xx=$non2xx socket-errors=$sockerr"

    (( requests > 0 )) || FAILURES+=("$name: wrk completed no requests")
    too_many "$non2xx" "$requests" && FAILURES+=("$name: $non2xx non-2xx responses out of $requests")
    too_many "$sockerr" "$requests" && FAILURES+=("$name: $sockerr socket errors out of $requests")
    return 0
}

# ---------------------------------------------------------------- oha: latency at a fixed rate
measure_rate() { # measure_rate NAME URL KEY RATE: FIXED[NAME@RATE]="p50 p99" in ms
    local name="$1" url="$2" key="$3" rate="$4" out="$TMP/oha-$1-$4.json"
    # One connection per 10 req/s (at least 5): enough that a slow answer does not hold back the
    # schedule, which --latency-correction then charges to the requests that waited.
    local conns=$(( rate / 10 > 5 ? rate / 10 : 5 ))
    settle
    log "$name: ${RATE_DURATION}s at $rate req/s ($conns connections, latency-corrected)"
    run_bg "$out" "$OHA" --no-tui --output-format json --latency-correction -z "${RATE_DURATION}s" \
        --wait-ongoing-requests-after-deadline \
        -q "$rate" -c "$conns" -m POST -T application/json -H "Authorization: Bearer $key" \
        -d "$BODY" "$url" || die "$name: oha failed: $(head -c 2000 "$out")"
    local parsed
    parsed="$(python3 - "$out" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
doc = json.loads(raw[raw.index("{"):])
pct = doc["latencyPercentiles"]
codes = doc.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values()) + sum(doc.get("errorDistribution", {}).values())
print("%.3f %.3f %d %d" % (pct["p50"] * 1000, pct["p99"] * 1000, ok, total))
PY
)" || die "$name: unreadable oha output: $(head -c 2000 "$out")"
    local p50 p99 ok total
    read -r p50 p99 ok total <<<"$parsed"
    FIXED[$name@$rate]="$p50 $p99"
    echo "----- $name @ $rate req/s: p50=$p50 ms p99=$p99 ms ($ok of $total answered 2xx)"
    (( total > 0 )) || FAILURES+=("$name @ $rate req/s: no request completed")
    too_many $((total - ok)) "$total" && FAILURES+=("$name @ $rate req/s: $((total - ok)) of $total not 2xx")
    return 0
}

# ---------------------------------------------------------------- SSE: first and last byte
measure_sse() {  # measure_sse NAME URL KEY: SSE[NAME]="ttfb50 ttfb99 ttlb50 ttlb99 reads-with-several"
    local name="$1" url="$2" key="$3" out="$TMP/sse-$1.json"
    settle
    log "$name: $SSE_REQUESTS streamed answers ($STREAM_CHUNKS events ${STREAM_INTERVAL_MS} ms apart), one after another"
    run_bg "$out" python3 "$ROOT/bench/sse_timing.py" "$url" "$key" "$SSE_REQUESTS" "$STREAM_BODY" \
        || die "$name: sse_timing failed: $(cat "$out")"
    local parsed
    parsed="$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["ttfb_p50_ms"], d["ttfb_p99_ms"], d["ttlb_p50_ms"], d["ttlb_p99_ms"],
      d["reads_with_several_events"], d["events_per_answer"], d["ok"], d["failures"])' "$out")" \
        || die "$name: unreadable sse output: $(cat "$out")"
    local f50 f99 l50 l99 several events ok failed
    read -r f50 f99 l50 l99 several events ok failed <<<"$parsed"
    SSE[$name]="$f50 $f99 $l50 $l99 $several $events"
    echo "----- $name SSE: first byte p50=$f50 p99=$f99 ms, last byte p50=$l50 p99=$l99 ms, $events events per answer, $several reads carried several events; $ok ok, $failed failed"
    (( failed == 0 )) || FAILURES+=("$name SSE: $failed of $SSE_REQUESTS streamed requests failed")
    return 0
}

wait_alive() {   # wait_alive PID NAME LOGFILE: fail if the process died
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2 || true; die "$2 exited prematurely (log: $3)"; }
}

# ---------------------------------------------------------------- machine and settings
CPU_MODEL="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
echo "## Machine"
echo "- nproc: $(nproc), CPU: ${CPU_MODEL:-unknown}, kernel: $(uname -sr), memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- wrk: $(wrk -v 2>&1 | head -n1 || true); oha: $("$OHA" --version 2>&1 | head -n1); $("$NGINX" -v 2>&1 | head -n1)"
echo "- gpt-load: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'), $PROFILE build from $CARGO_TARGET_DIR"
echo
echo "## Settings"
echo "- max load: wrk -t $THREADS -c $CONNECTIONS, ${DURATION}s measured after ${WARMUP}s warm-up, POST non-streamed, body $BODY"
echo "- fixed rates: oha --latency-correction, ${RATE_DURATION}s at each of $RATES req/s"
echo "- SSE: $SSE_REQUESTS streamed answers per target, one after another on one keep-alive connection, $STREAM_CHUNKS events ${STREAM_INTERVAL_MS} ms apart"
echo "- mock upstream: --any-key --no-record --workers $MOCK_WORKERS"
echo "- nginx: worker_processes $NGINX_WORKERS, access_log off, upstream keepalive 64, HTTP/1.1, key rotation by split_clients"
echo "- gpt-load: LOG_LEVEL=info (one access-log line per request), MAX_CONCURRENT_REQUESTS=10000, sqlite, 3 upstream keys rotated; gpt-load-nolog adds ENABLE_REQUEST_LOGS=false"
echo "- CPU via /proc/PID/stat utime+stime (CLK_TCK=$CLK_TCK) over the measured run only, divided by wrk's request count; everything shares the same $(nproc) CPUs"
echo

# ---------------------------------------------------------------- mock upstream
log "starting mock upstream"
# Create the output files first: the background job opens its redirections only after the fork.
: >"$TMP/mock.out"; : >"$TMP/mock.err"; : >"$TMP/nginx.out"; : >"$TMP/error.log"
"$MOCK_BIN" --port 0 --any-key --no-record --workers "$MOCK_WORKERS" \
    --stream-chunks "$STREAM_CHUNKS" --stream-interval-ms "$STREAM_INTERVAL_MS" >"$TMP/mock.out" 2>"$TMP/mock.err" &
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
cat >"$TMP/nginx.conf" <<CONF
# Generated by bench/run.sh: a plain reverse proxy that rotates three upstream keys.
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

    split_clients "\$request_id" \$upstream_key {
        33.3%   "Bearer sk-up-1";
        33.3%   "Bearer sk-up-2";
        *       "Bearer sk-up-3";
    }

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
            proxy_set_header Authorization \$upstream_key;
        }
    }
}
CONF
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

# ---------------------------------------------------------------- gpt-load (logging on and off)
declare -A GL_PIDS GL_BASE GROUP_IDS
start_gpt_load() {   # start_gpt_load NAME BINARY EXTRA_ENV...
    local name="$1" bin="$2" port
    shift 2
    port="$(free_port)"
    : >"$TMP/$name.log"
    # Clean environment: only the settings below (plus PATH/HOME) reach the service.
    env -i PATH="$PATH" HOME="${HOME:-/}" \
        AUTH_KEY="$ADMIN_KEY" PORT="$port" HOST=127.0.0.1 DATABASE_DSN="$TMP/$name.db" \
        LOG_LEVEL=info MAX_CONCURRENT_REQUESTS=10000 "$@" \
        "$bin" >"$TMP/$name.log" 2>&1 &
    GL_PIDS[$name]=$!
    PIDS+=("$!")
    GL_BASE[$name]="http://127.0.0.1:$port"
}

admin_post() {   # admin_post BASE PATH JSON -> response body on stdout; dies unless code == 0
    local resp code
    resp="$(curl -sS --max-time 60 -X POST -H "Authorization: Bearer $ADMIN_KEY" \
        -H 'Content-Type: application/json' --data-binary "$3" "$1$2")" || die "POST $2 failed"
    code="$(json_get .code <<<"$resp" 2>/dev/null || echo '?')"
    [[ "$code" == 0 ]] || die "POST $2 answered: $(head -c 500 <<<"$resp")"
    printf '%s' "$resp"
}

setup_gpt_load() {   # setup_gpt_load NAME: waits for /health, creates the group and its keys
    local name="$1" base="${GL_BASE[$1]}" pid="${GL_PIDS[$1]}" deadline
    deadline=$((SECONDS + 60))
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/health" || true)" == 200 ]]; do
        wait_alive "$pid" "$name" "$TMP/$name.log"
        (( SECONDS < deadline )) || { tail -n 50 "$TMP/$name.log" >&2; die "$name /health not 200 within 60 s"; }
        sleep 0.2
    done
    local group group_id
    group="$(admin_post "$base" /api/groups "{\"name\":\"bench\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$MOCK_URL\",\"weight\":1}],\"proxy_keys\":\"$PROXY_KEY\"}")"
    group_id="$(json_get .data.id <<<"$group")"
    [[ "$group_id" =~ ^[0-9]+$ ]] || die "no group id in: $group"
    admin_post "$base" /api/keys/add-multiple "{\"group_id\":$group_id,\"keys_text\":\"$UPSTREAM_KEYS\"}" >/dev/null
    # Keys may reach the pool asynchronously: wait until the proxy answers 200.
    deadline=$((SECONDS + 15))
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
                -H "Authorization: Bearer $PROXY_KEY" --data "$BODY" "$base/proxy/bench/v1/chat/completions" || true)" == 200 ]]; do
        wait_alive "$pid" "$name" "$TMP/$name.log"
        (( SECONDS < deadline )) || break   # check_one reports the failing answer
        sleep 0.2
    done
    GROUP_IDS[$name]="$group_id"
    RSS_IDLE[$name]="$(mib "$(status_kib VmRSS "$pid")")"
    log "$name pid $pid at $base, group $group_id, idle RSS ${RSS_IDLE[$name]} MiB"
}

GL_NAMES=(gpt-load gpt-load-nolog)
start_gpt_load gpt-load "$GPT_LOAD_BIN"
start_gpt_load gpt-load-nolog "$GPT_LOAD_BIN" ENABLE_REQUEST_LOGS=false
if [[ -n "${BEFORE_BIN:-}" ]]; then
    [[ -x "$BEFORE_BIN" ]] || die "BEFORE_BIN is not an executable: $BEFORE_BIN"
    GL_NAMES+=(gpt-load-before)
    start_gpt_load gpt-load-before "$BEFORE_BIN"
fi
for t in "${GL_NAMES[@]}"; do setup_gpt_load "$t"; done

# ---------------------------------------------------------------- measurements
TARGETS=(mock-direct nginx "${GL_NAMES[@]}")
declare -A URL KEY TPIDS UPIDS
URL[mock-direct]="$MOCK_URL/v1/chat/completions";                 KEY[mock-direct]="sk-direct"
URL[nginx]="http://127.0.0.1:$NGINX_PORT/v1/chat/completions";    KEY[nginx]="client-key-unused"
TPIDS[mock-direct]="$MOCK_PID"; UPIDS[mock-direct]=""
TPIDS[nginx]="${NGINX_WORKER_PIDS[*]}"
UPIDS[nginx]="$MOCK_PID"
for t in "${GL_NAMES[@]}"; do
    URL[$t]="${GL_BASE[$t]}/proxy/bench/v1/chat/completions"; KEY[$t]="$PROXY_KEY"
    TPIDS[$t]="${GL_PIDS[$t]}"; UPIDS[$t]="$MOCK_PID"
done

for t in "${TARGETS[@]}"; do measure_max "$t" "${URL[$t]}" "${KEY[$t]}" "${TPIDS[$t]}" "${UPIDS[$t]}"; done
for rate in $RATES; do
    for t in "${TARGETS[@]}"; do measure_rate "$t" "${URL[$t]}" "${KEY[$t]}" "$rate"; done
done
for t in "${TARGETS[@]}"; do measure_sse "$t" "${URL[$t]}" "${KEY[$t]}"; done
for t in "${GL_NAMES[@]}"; do RSS_AFTER[$t]="$(mib "$(status_kib VmRSS "${GL_PIDS[$t]}")")"; done
RSS_IDLE[nginx]="-"; RSS_AFTER[nginx]="$(mib "$(status_kib VmRSS "${NGINX_WORKER_PIDS[@]}")")"
RSS_IDLE[mock-direct]="-"; RSS_AFTER[mock-direct]="-"

# Memory with many keys: BIG_KEYS keys imported into a second group of the logging-off instance
# (add-async, as the UI does), measured once the import task has finished.
big_keys_rss() {
    local base="${GL_BASE[gpt-load-nolog]}" pid="${GL_PIDS[gpt-load-nolog]}" group group_id keys_file
    log "gpt-load-nolog: importing $BIG_KEYS keys into one group"
    group="$(admin_post "$base" /api/groups "{\"name\":\"big\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$MOCK_URL\",\"weight\":1}]}")"
    group_id="$(json_get .data.id <<<"$group")"
    keys_file="$TMP/big-keys.json"
    python3 - "$BIG_KEYS" "$group_id" >"$keys_file" <<'PY'
import json, sys
n, gid = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"group_id": gid, "keys_text": "\n".join("sk-bench-%048d" % i for i in range(n))}))
PY
    admin_post "$base" /api/keys/add-async "@$keys_file" >/dev/null
    local deadline=$((SECONDS + 600)) status
    while :; do
        status="$(curl -s --max-time 5 -H "Authorization: Bearer $ADMIN_KEY" "$base/api/tasks/status")"
        [[ "$(json_get .data.is_running <<<"$status")" == False || "$(json_get .data.is_running <<<"$status")" == false ]] && break
        (( SECONDS < deadline )) || die "import of $BIG_KEYS keys did not finish within 600 s"
        sleep 0.5
    done
    local count
    count="$(curl -s --max-time 30 -H "Authorization: Bearer $ADMIN_KEY" "$base/api/keys?group_id=$group_id&page_size=1" \
        | json_get .data.pagination.total_items)"
    [[ "$count" == "$BIG_KEYS" ]] || FAILURES+=("big keys: $count keys in the group after the import, expected $BIG_KEYS")
    RSS_BIG="$(mib "$(status_kib VmRSS "$pid")")"
    log "gpt-load-nolog with $count keys: RSS $RSS_BIG MiB"
}
big_keys_rss

KEY_USAGE="$(curl -s --max-time 5 -H "Authorization: Bearer $ADMIN_KEY" \
    "${GL_BASE[gpt-load]}/api/keys?group_id=${GROUP_IDS[gpt-load]}&page_size=100" | python3 -c '
import json, sys
try:
    items = json.load(sys.stdin)["data"]["items"]
    print(", ".join("%s=%s" % (k["key_value"], k["request_count"]) for k in items))
except Exception as e:
    print("unavailable (%s)" % e)' 2>/dev/null || echo unavailable)"
GL_WARN="$(for t in "${GL_NAMES[@]}"; do cat "$TMP/$t.log"; done | grep -ciE '(^|[^a-z])(warn|error)([^a-z]|$)|panick' || true)"
NGINX_ERR="$(grep -cvE '^\s*$' "$TMP/error.log" 2>/dev/null || true)"

# ---------------------------------------------------------------- tables
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else printf "-" }'; }
over() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }

echo
echo "## Results ($(nproc) CPUs; max load: ${DURATION}s, $CONNECTIONS connections)"
echo
echo "| target | max req/s | CPU µs/request | CPU vs nginx | p99 at max load | p99 vs nginx | peak RSS | mock CPU µs/request | requests, non-2xx, socket errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for t in "${TARGETS[@]}"; do
    echo "| $t | ${RPS[$t]} | ${CPU_US[$t]} | $(ratio "${CPU_US[$t]}" "${CPU_US[nginx]}") | ${P99MAX[$t]} ms | $(ratio "${P99MAX[$t]}" "${P99MAX[nginx]}") | ${PEAK_MIB[$t]} MiB | ${UP_CPU_US[$t]} | ${REQS[$t]}, ${NON2XX[$t]}, ${SOCKERR[$t]} |"
done
echo
echo "Latency at a fixed rate (oha, coordinated-omission corrected), ms; overhead = minus mock-direct:"
echo
header="| target |"; sep="|---|"
for rate in $RATES; do header+=" p50 @ $rate/s | p99 @ $rate/s | p99 overhead @ $rate/s |"; sep+="---:|---:|---:|"; done
echo "$header"; echo "$sep"
for t in "${TARGETS[@]}"; do
    row="| $t |"
    for rate in $RATES; do
        read -r p50 p99 <<<"${FIXED[$t@$rate]}"
        read -r _ d99 <<<"${FIXED[mock-direct@$rate]}"
        row+=" $p50 | $p99 | $(over "$p99" "$d99") |"
    done
    echo "$row"
done
echo
echo "SSE, $STREAM_CHUNKS events ${STREAM_INTERVAL_MS} ms apart, ms; overhead = minus mock-direct:"
echo
echo "| target | first byte p50 | first byte p99 | overhead p50 / p99 | last byte p50 | last byte p99 | events per answer | reads with several events |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
read -r d50 d99 _ _ _ _ <<<"${SSE[mock-direct]}"
for t in "${TARGETS[@]}"; do
    read -r f50 f99 l50 l99 several events <<<"${SSE[$t]}"
    echo "| $t | $f50 | $f99 | $(over "$f50" "$d50") / $(over "$f99" "$d99") | $l50 | $l99 | $events | $several |"
done
echo
echo "Memory (VmRSS, MiB):"
echo
echo "| target | idle | after the load above | with $BIG_KEYS keys in one group |"
echo "|---|---:|---:|---:|"
echo "| nginx (workers) | - | ${RSS_AFTER[nginx]} | - |"
for t in "${GL_NAMES[@]}"; do
    big="-"; [[ "$t" == gpt-load-nolog ]] && big="$RSS_BIG"
    echo "| $t | ${RSS_IDLE[$t]} | ${RSS_AFTER[$t]} | $big |"
done
echo
echo "- gpt-load upstream key request_count: $KEY_USAGE"
echo "- gpt-load logs: $GL_WARN lines mentioning warn/error/panic; nginx error.log: ${NGINX_ERR:-0} lines"
if (( GL_WARN > 0 )); then
    for t in "${GL_NAMES[@]}"; do cat "$TMP/$t.log"; done | grep -iE '(^|[^a-z])(warn|error)([^a-z]|$)|panick' | head -n 10 || true
fi

if (( ${#FAILURES[@]} > 0 )); then
    echo
    for f in "${FAILURES[@]}"; do echo "FAIL: $f" >&2; done
    exit 1
fi
