"""Schemathesis hooks of .ci/test-openapi.

The server runs with TRUSTED_PROXIES=127.0.0.1, and every request names its own client address in
X-Forwarded-For: the fuzzer sends many wrong admin keys on purpose (login bodies, the ignored-auth
check), and from one address the login throttle would lock every later case out with 429.
"""

import itertools

import schemathesis

_clients = itertools.count(1)


@schemathesis.hook
def before_call(context, case, kwargs):
    n = next(_clients)
    if case.headers is None:
        case.headers = {}
    case.headers["X-Forwarded-For"] = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
