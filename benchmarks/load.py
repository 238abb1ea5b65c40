"""HTTP load for the benchmarks: one way to fire requests, one percentile.

    fire(url, bodies, concurrency)     every body once, `concurrency` client threads (a load test)
    flood(url, bodies, clients, secs)  `clients` threads sending back to back for `secs` (an overload)
    percentile(values, q)              one definition for every figure: numpy's method="nearest"

Both loads POST JSON, one keep-alive `requests.Session` per client thread, and time each request
on the client (connect, send, the whole response read). A request that gets no response
(refused, reset, timed out) is a shot with status -1, not an exception: one bad request does
not end a run. Used by benchmarks/serve.py and benchmarks/gpu_smoke.py as a sibling module
(benchmarks/ is not a package; each script puts its own folder on sys.path).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple, Optional

import requests

NO_RESPONSE = -1


class Shot(NamedTuple):
    """One request: the HTTP status (NO_RESPONSE if none came), client-side ms, the response body."""

    status: int
    ms: float
    body: bytes


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) as the sample nearest to the position q/100 * (n - 1) of the
    sorted values, a tie to the even position: numpy's `percentile(..., method="nearest")`.
    Always one of the values, never an interpolation between two."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], not {q}")
    ordered = sorted(values)
    return ordered[round(q / 100 * (len(ordered) - 1))]


def shoot(session: requests.Session, url: str, body: dict, headers: Optional[dict], timeout: float) -> Shot:
    started = time.perf_counter()
    try:
        r = session.post(url, json=body, headers=headers, timeout=timeout)
    except requests.RequestException:
        return Shot(NO_RESPONSE, (time.perf_counter() - started) * 1000, b"")
    return Shot(r.status_code, (time.perf_counter() - started) * 1000, r.content)


def fire(url: str, bodies: Sequence[dict], concurrency: int, *, headers: Optional[dict] = None,
         timeout: float = 120.0) -> list[Shot]:
    """POST every body once, at most `concurrency` at a time; the shots in the order of `bodies`."""
    sessions: dict[int, requests.Session] = {}

    def one(body: dict) -> Shot:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        return shoot(session, url, body, headers, timeout)

    try:
        with cf.ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, bodies))
    finally:
        for session in sessions.values():
            session.close()


def flood(url: str, bodies: Sequence[dict], clients: int, seconds: float, *, headers: Optional[dict] = None,
          timeout: float = 600.0) -> list[Shot]:
    """`clients` threads, each POSTing back to back until `seconds` have passed (client k sends
    bodies k, k + clients, ... cycling); every shot, in the order they finished. A request under
    way at the deadline is waited for, up to `timeout`."""
    stop, lock, log = time.monotonic() + seconds, threading.Lock(), []

    def client(k: int) -> None:
        with requests.Session() as session:
            i = k
            while time.monotonic() < stop:
                shot = shoot(session, url, bodies[i % len(bodies)], headers, timeout)
                with lock:
                    log.append(shot)
                i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return log
