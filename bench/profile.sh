#!/usr/bin/env bash
# Where a proxied request's CPU time goes, phase by phase: runs the mock upstream and gpt-load
# (release build, request logging on, LOG_LEVEL=info, three keys rotated, as bench/run.sh), puts
# it under wrk's max load, samples it with `perf record --call-graph dwarf`, and charges every
# sample to the request-path phase it was spent in (bench/phases.py). See bench/README.md.
#
#   bash bench/profile.sh
#   BIN_DIR=/path/to/other/build SECONDS_SAMPLED=10 bash bench/profile.sh
#
# Knobs: BIN_DIR (default $CARGO_TARGET_DIR/release, built if missing), SECONDS_SAMPLED (5),
# STREAM=1 (streamed answers: 20 SSE events each, sent back to back, to weigh the usage scanner),
# FREQ (perf sampling Hz, 499), CONNECTIONS (64), EXTRA_ENV (e.g. "ENABLE_REQUEST_LOGS=false"),
# KEEP_TMP=1. Needs perf (Debian: linux-perf) and wrk; installs them with apt-get if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gpt-load-target}"
BIN_DIR="${BIN_DIR:-$CARGO_TARGET_DIR/release}"
SECONDS_SAMPLED="${SECONDS_SAMPLED:-5}"
FREQ="${FREQ:-499}"
CONNECTIONS="${CONNECTIONS:-64}"
ADMIN_KEY="bench-admin-key-0123456789"
PROXY_KEY="sk-bench-proxy-key"
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
[[ "${STREAM:-0}" == 1 ]] && BODY='{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}'

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpt-load-profile.XXXXXX")"
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if (( rc != 0 )) || [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

for pkg in perf:linux-perf wrk:wrk; do
    command -v "${pkg%%:*}" >/dev/null 2>&1 && continue
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg#*:}" >"$TMP/apt.log" 2>&1 \
        || { apt-get update -qq >>"$TMP/apt.log" 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg#*:}" >>"$TMP/apt.log" 2>&1; } \
        || die "could not install ${pkg#*:}"
done
if [[ ! -x "$BIN_DIR/gpt-load" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p gpt-load -p gpt-load-mock-upstream)
fi
cd "$TMP"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

"$BIN_DIR/gpt-load-mock-upstream" --port 0 --any-key --no-record --workers 2 --stream-chunks 20 >mock.out 2>mock.err &
PIDS+=("$!")
MOCK_URL=""
for _ in $(seq 1 100); do
    MOCK_URL="$(awk '/^LISTENING / {print $2; exit}' mock.out 2>/dev/null || true)"
    [[ -n "$MOCK_URL" ]] && break; sleep 0.1
done
[[ -n "$MOCK_URL" ]] || die "the mock upstream did not start"

PORT="$(free_port)"
# shellcheck disable=SC2086 # EXTRA_ENV is a list of NAME=VALUE words
env -i PATH="$PATH" HOME="${HOME:-/}" AUTH_KEY="$ADMIN_KEY" PORT="$PORT" HOST=127.0.0.1 \
    DATABASE_DSN="$TMP/profile.db" LOG_LEVEL=info MAX_CONCURRENT_REQUESTS=10000 ${EXTRA_ENV:-} \
    "$BIN_DIR/gpt-load" >gpt-load.log 2>&1 &
GL_PID=$!
PIDS+=("$GL_PID")
GL="http://127.0.0.1:$PORT"
for _ in $(seq 1 300); do curl -fsS "$GL/health" >/dev/null 2>&1 && break; sleep 0.1; done
admin() {
    curl -fsS -X POST -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' --data "$2" "$GL$1"
}
GID="$(admin /api/groups "{\"name\":\"bench\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$MOCK_URL\",\"weight\":1}],\"proxy_keys\":\"$PROXY_KEY\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')"
admin /api/keys/add-multiple "{\"group_id\":$GID,\"keys_text\":\"sk-up-1,sk-up-2,sk-up-3\"}" >/dev/null
URL="$GL/proxy/bench/v1/chat/completions"
for _ in $(seq 1 100); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PROXY_KEY" -H 'Content-Type: application/json' --data "$BODY" "$URL")" == 200 ]] && break
    sleep 0.1
done
cat >wrk.lua <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $PROXY_KEY"
done = function(summary, latency, requests) io.write(string.format("BENCH requests=%d\n", summary.requests)) end
LUA
log "warm-up"
wrk -t 2 -c "$CONNECTIONS" -d 2s -s wrk.lua "$URL" >/dev/null
log "sampling gpt-load (pid $GL_PID) for ${SECONDS_SAMPLED}s at ${FREQ} Hz under max load"
wrk -t 2 -c "$CONNECTIONS" -d "$((SECONDS_SAMPLED + 2))s" -s wrk.lua "$URL" >wrk.out 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
sleep 1
t0="$(cpu_ticks "$GL_PID")"; s0="$(date +%s.%N)"
perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -o perf.data -p "$GL_PID" -- sleep "$SECONDS_SAMPLED" 2>perf.err \
    || die "perf record failed: $(cat perf.err)"
t1="$(cpu_ticks "$GL_PID")"; s1="$(date +%s.%N)"
wait "$WRK_PID" || true
REQS="$(sed -nE 's/^BENCH requests=([0-9]+)/\1/p' wrk.out)"
[[ -n "$REQS" && "$REQS" -gt 0 ]] || die "wrk completed no requests: $(cat wrk.out)"
# wrk ran SECONDS_SAMPLED+2 s; the CPU was measured over the sampled window only.
CPU_US="$(awk -v dt=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v req="$REQS" -v w="$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b-a}')" \
    -v total="$((SECONDS_SAMPLED + 2))" 'BEGIN { printf "%.1f", (dt / hz) * 1e6 / (req * w / total) }')"
log "$REQS requests, ~$CPU_US µs CPU per request while sampled (perf's own unwinding included)"
perf script -i perf.data -F comm,tid,ip,sym 2>/dev/null | python3 "$ROOT/bench/phases.py" "$CPU_US"
