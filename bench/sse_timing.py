#!/usr/bin/env python3
"""Times streamed (SSE) answers, one request after another on one keep-alive connection.

    sse_timing.py URL KEY REQUESTS BODY

For each request it records the time from sending the request to the first SSE event
(`data:` or `event:` in the body: time to first byte of content) and to the end of the body
(time to last byte), and how many events each socket read carried: with the upstream's
events 5 ms apart, more than one event in a read means somebody held one back (coalescing).
Prints one JSON object with the percentiles (milliseconds) and the coalescing counts.

A raw socket client rather than a library one, so that what is timed is the bytes' arrival.
"""

import json
import socket
import sys
import time
from urllib.parse import urlsplit


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Connection:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.sock = None

    def ensure(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def one_request(conn, request):
    """Sends one request; returns (ttfb_s, ttlb_s, events_per_read list, status)."""
    sock = conn.ensure()
    started = time.perf_counter()
    sock.sendall(request)
    buf = b""
    head_end = -1
    first = None
    events_per_read = []
    status = None
    chunked = False
    length = None
    close_after = False
    while True:
        data = sock.recv(65536)
        now = time.perf_counter()
        if not data:
            raise ConnectionError("connection closed before the answer ended")
        if head_end < 0:
            buf += data
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ")[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                if name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "content-length":
                    length = int(value)
                elif name == "connection" and value.lower() == "close":
                    close_after = True
            body = buf[head_end + 4:]
            buf = body
            data = body
        else:
            buf += data
        events = data.count(b"data:") + data.count(b"\nevent:") + data.startswith(b"event:")
        if events:
            events_per_read.append(events)
            if first is None:
                first = now
        if chunked and buf.endswith(b"0\r\n\r\n"):
            break
        if length is not None and len(buf) >= length:
            break
    if close_after:
        conn.close()
    return (first or now) - started, now - started, events_per_read, status


def main():
    url, key, requests, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    path = parts.path + (("?" + parts.query) if parts.query else "")
    payload = body.encode()
    request = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {parts.hostname}:{parts.port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: text/event-stream\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    conn = Connection(parts.hostname, parts.port)
    ttfb, ttlb, max_events, coalesced_reads, events_total, failures = [], [], 0, 0, 0, 0
    for _ in range(requests):
        try:
            first, last, per_read, status = one_request(conn, request)
        except (OSError, ValueError, IndexError):
            conn.close()
            failures += 1
            continue
        if status != 200:
            failures += 1
            continue
        ttfb.append(first)
        ttlb.append(last)
        max_events = max([max_events] + per_read)
        coalesced_reads += sum(1 for n in per_read if n > 1)
        events_total += sum(per_read)
    conn.close()
    ms = lambda v: None if v is None else round(v * 1000, 3)
    print(json.dumps({
        "requests": requests,
        "ok": len(ttfb),
        "failures": failures,
        "ttfb_p50_ms": ms(percentile(ttfb, 50)),
        "ttfb_p99_ms": ms(percentile(ttfb, 99)),
        "ttlb_p50_ms": ms(percentile(ttlb, 50)),
        "ttlb_p99_ms": ms(percentile(ttlb, 99)),
        "events_per_answer": round(events_total / len(ttfb), 1) if ttfb else 0,
        "max_events_in_one_read": max_events,
        "reads_with_several_events": coalesced_reads,
    }))


if __name__ == "__main__":
    main()
