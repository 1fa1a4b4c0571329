"""A quick check that a download host answers, made once per process, so offline loads fail fast.

tensorflow-datasets retries each download for minutes when there is no network. One TCP
connection attempt, bounded by `PROBE_TIMEOUT_S` (the name lookup included), tells the same
in about a second; its answer is remembered for the process, so later loads do not wait again.
"""

from __future__ import annotations

import functools
import socket
import threading
import urllib.parse
import urllib.request

__all__ = ["PROBE_TIMEOUT_S", "unreachable"]

PROBE_TIMEOUT_S = 2.0


def unreachable(url: str) -> str | None:
    """Why a download of `url` cannot start (no connection to its host or proxy), or None when it can."""
    host, port = _endpoint(url)
    return _probe(host, port)


def _endpoint(url: str) -> tuple[str, int]:
    """The host and port a download of `url` connects to first: its proxy's, when one is set."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default_port


@functools.cache
def _probe(host: str, port: int) -> str | None:
    """One connection attempt to `host:port`, remembered per process; the reason it failed, or None.

    The attempt runs in a daemon thread so that a hanging name lookup, which ignores socket
    timeouts, is bounded by `PROBE_TIMEOUT_S` too.
    """
    timeout = PROBE_TIMEOUT_S
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except Exception as err:  # OSError mostly; a malformed host name raises UnicodeError
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=attempt, name=f"jaxnet_lite-probe-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no network: {host}:{port} did not answer within {timeout:g} s"
    if outcome[0] is not None:
        return f"no network: cannot connect to {host}:{port} ({outcome[0]})"
    return None
