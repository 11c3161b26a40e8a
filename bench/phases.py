#!/usr/bin/env python3
"""Where a proxied request's CPU time goes: reads `perf script` output (samples with call
graphs) on stdin and charges each sample to the innermost frame that belongs to a phase of the
request path, then prints a table.

    perf script -i perf.data | phases.py CPU_US_PER_REQUEST [PHASE]

With PHASE (a name from the table), it lists that phase's leaf functions instead.

CPU_US_PER_REQUEST (measured over the same window) turns shares into microseconds per request.
"""

import re
import sys
from collections import Counter

# Phases of the request path (and the writers behind it): a sample is charged to the innermost
# frame that matches one of these. Kernel frames (syscalls) thereby go to the user frame that
# made the call, and an allocation to the phase that asked for it.
PHASES = [
    ("usage scan", r"gpt_load::usage::"),
    ("record: log rows, final-row body wrapper", r"gpt_load::proxy::record::"),
    ("authenticate (credential, group, path)", r"gpt_load::proxy::(authenticate|path)::|gpt_load::http::credentials::"),
    ("read body", r"gpt_load::proxy::body::"),
    ("admission (slots, body budget)", r"gpt_load::http::admission::"),
    ("resolve + key lease", r"gpt_load::proxy::resolve::|gpt_load_actors::key_pool::|gpt_load_actors::weighted::"),
    ("prepare (headers, overrides, context)", r"gpt_load::proxy::(prepare|rewrite|context)::|gpt_load::channel::"),
    ("client watch (cancel)", r"gpt_load::proxy::cancel::"),
    ("upstream exchange (awc client)", r"awc::|actix_http::client::|gpt_load::proxy::(send|outbound|upstream)::"),
    ("attempt loop (key injection, outcome)", r"gpt_load::proxy::(attempt|failure|classify)::"),
    ("relay (response head, body stream)", r"gpt_load::proxy::relay::"),
    ("metrics", r"gpt_load::metrics::|prometheus_client::"),
    ("access log (filter, format)", r"tracing_subscriber::|tracing_core::|tracing::|gpt_load::http::middleware::logged_target"),
    ("log writer thread (stdout)", r"gpt_load::log_writer::|tracing_appender::"),
    ("request-log writer (batch, SQLite)", r"gpt_load::db::|diesel|sqlite3|gpt_load_actors::log_batcher::|deadpool"),
    ("proxy handler (glue)", r"gpt_load::proxy::"),
]
# Layers around the phases: a sample with no phase frame goes to the innermost of these.
LAYERS = [
    ("HTTP/1 server (actix-http parse, write)", r"actix_http::"),
    ("actix-web routing, middleware", r"actix_web::|actix_service::|actix_cors::|actix_router::|regex_lite::|gpt_load::http::"),
    ("runtime (tokio, actix-rt, epoll)", r"tokio::|actix_rt::|mio::|actix_server::|actix::|epoll_wait|futex|schedule"),
]
COMPILED = [[(name, re.compile(pattern)) for name, pattern in group] for group in (PHASES, LAYERS)]


def charge(frames):
    """frames: symbols from leaf to root."""
    for group in COMPILED:
        for symbol in frames:
            for name, pattern in group:
                if pattern.search(symbol):
                    return name
    leaf = frames[0] if frames else ""
    if leaf.startswith("[k]"):
        return "kernel (no user frame)"
    return "other"


def samples(stream):
    frames = []
    in_sample = False
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        if not line.startswith((" ", "\t")):
            in_sample = True
            frames = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            symbol = parts[1]
            if "[kernel.kallsyms]" in symbol:
                symbol = "[k]" + symbol
            frames.append(symbol)
    if in_sample:
        yield frames


def main():
    cpu_us = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    detail = sys.argv[2] if len(sys.argv) > 2 else None
    if detail:
        # The leaf functions of one phase's samples: where inside it the time goes.
        leaves = Counter(
            frames[0] for frames in samples(sys.stdin) if frames and charge(frames) == detail
        )
        total = sum(leaves.values())
        for leaf, n in leaves.most_common(25):
            print(f"{n / max(total, 1) * 100:5.1f} %  {leaf[:150]}")
        return 0
    counts = Counter(charge(frames) for frames in samples(sys.stdin))
    total = sum(counts.values())
    if not total:
        print("no samples")
        return 1
    print("| phase | share of CPU | µs per request |")
    print("|---|---:|---:|")
    for name, n in counts.most_common():
        share = n / total
        print(f"| {name} | {share * 100:.1f} % | {share * cpu_us:.1f} |")
    print(f"| **total** ({total} samples) | 100 % | {cpu_us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
