"""benchmarks/load.py, the benchmarks' HTTP load and percentile, against a tiny local server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from benchmark_scripts import load_benchmark

load = load_benchmark("load")


class Server:
    """A loopback HTTP server: POST {"status": N, "sleep": s} answers N with the body echoed,
    after `s` seconds; it counts the requests in flight at once."""

    def __init__(self):
        self.lock, self.in_flight, self.max_in_flight = threading.Lock(), 0, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients' sessions expect

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                time.sleep(body.get("sleep", 0))
                with owner.lock:
                    owner.in_flight -= 1
                out = json.dumps({**body, "auth": self.headers.get("Authorization")}).encode()
                self.send_response(body.get("status", 200))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_percentile_is_numpys_nearest_and_always_a_sample():
    import numpy as np

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 7, 10, 50, 101):
        values = list(rng.exponential(100.0, n))
        for q in (0, 10, 25, 50, 75, 90, 95, 99, 100, 37.5):
            got = load.percentile(values, q)
            assert got == np.percentile(values, q, method="nearest"), (n, q)
            assert got in values
    assert load.percentile([5.0, 1.0, 3.0], 50) == 3.0  # sorted first
    assert load.percentile([1.0, 2.0, 3.0, 4.0], 50) == 3.0  # position 1.5: the tie goes to the even index
    with pytest.raises(ValueError):
        load.percentile([], 50)
    with pytest.raises(ValueError):
        load.percentile([1.0], 101)


def test_fire_sends_every_body_once_in_order_at_bounded_concurrency(server):
    statuses = [200] * 9 + [404, 429, 500]
    bodies = [{"i": i, "status": s, "sleep": 0.1} for i, s in enumerate(statuses)]
    shots = load.fire(server.url, bodies, 3, headers={"Authorization": "Bearer k"}, timeout=30)
    assert [shot.status for shot in shots] == statuses  # one shot per body, in the bodies' order
    assert Counter(shot.status for shot in shots) == {200: 9, 404: 1, 429: 1, 500: 1}
    assert [json.loads(shot.body)["i"] for shot in shots] == list(range(len(bodies)))
    assert all(json.loads(shot.body)["auth"] == "Bearer k" for shot in shots)
    assert all(shot.ms >= 100 for shot in shots)  # the server's sleep is inside the client's time
    assert 1 < server.max_in_flight <= 3


def test_a_request_without_a_response_is_a_shot_not_an_exception():
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    shots = load.fire(url, [{}, {}], 2, timeout=5)
    assert [shot.status for shot in shots] == [load.NO_RESPONSE] * 2
    assert all(shot.body == b"" and shot.ms >= 0 for shot in shots)


def test_flood_sends_back_to_back_until_the_deadline(server):
    bodies = [{"i": i, "sleep": 0.02} for i in range(4)]
    started = time.monotonic()
    shots = load.flood(server.url, bodies, 2, 0.5, timeout=30)
    assert time.monotonic() - started < 10  # it stops: the deadline plus the last requests under way
    assert len(shots) >= 4 and {shot.status for shot in shots} == {200}
    assert {json.loads(shot.body)["i"] for shot in shots} == {0, 1, 2, 3}  # both clients cycle the bodies
    assert server.max_in_flight <= 2
