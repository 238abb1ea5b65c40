"""`medqa serve` in the foreground: up, answering, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from serving_helpers import free_port, wait_healthy

REPO = Path(__file__).resolve().parents[2]


def test_plan_reads_serve_configs_and_medqa_configs(tmp_path):
    from medqa.serving.command import parse_build_overrides, plan

    deploy = plan(str(REPO / "serve_configs/local.yaml"), {"model": "tiny-random"}, None, 9001)
    assert deploy["kind"] == "deploy" and deploy["schema"]["http_options"]["port"] == 9001
    assert deploy["schema"]["applications"][0]["args"]["model"] == "tiny-random"
    cfg = tmp_path / "medqa.yaml"
    cfg.write_text("serving: {port: 8123}\n")
    build = plan(str(cfg), parse_build_overrides(["max_batch_size=4"]), None, None)
    assert build == {"kind": "build", "args": {"config": str(cfg), "max_batch_size": 4},
                     "http_options": {"host": "127.0.0.1", "port": 8123}}
    with pytest.raises(ValueError):
        parse_build_overrides(["nonsense"])


@pytest.mark.ray
@pytest.mark.slow
def test_medqa_serve_runs_and_stops_cleanly_on_sigterm():
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, not the test session's
    proc = subprocess.Popen(
        [sys.executable, "-m", "medqa", "serve", "--port", str(port), "model=tiny-random", "num_replicas=1",
         "model_num_cpus=0.5", "small_num_cpus=0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        # The command announces itself on stdout once every deployment is RUNNING.
        first = _first_json_line(proc, timeout=240)
        assert first["status"] == "RUNNING" and first["url"] == url
        wait_healthy(url, timeout=30)
        r = requests.post(url + "/v1/mcq", json={"question": "q?", "options": ["a", "b", "c", "d"]}, timeout=60)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert json.loads(out.strip().splitlines()[-1])["status"] == "stopped", out
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=5)


def _first_json_line(proc: subprocess.Popen, timeout: float) -> dict:
    found: list = []

    def read():
        for line in proc.stdout:
            if line.startswith("{"):
                found.append(json.loads(line))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"`medqa serve` printed no summary within {timeout} s (exit code {proc.poll()})"
    return found[0]
