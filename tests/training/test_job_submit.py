"""`ray job submit` of jobs/train.py against a local head this test starts and stops.

The head is a separate Ray cluster from the session fixture's: its own temp
dir and free ports, started with `ray start --block` in a new process group
that the test terminates (never `ray stop`, which would stop every Ray on the
machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.ray


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:  # e.g. 401 under Ray's token auth: the server is up
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


@pytest.fixture
def local_head():
    """(dashboard address, env) of a fresh `ray start --head`; torn down by process group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["RAY_AUTH_MODE"] = "disabled"  # a throwaway head bound to 127.0.0.1: no token needed
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this venv's
    gcs, dash, client, agent, agent_grpc, rt_agent, metrics, nm, om = free_ports(9)
    temp_dir = tempfile.mkdtemp(prefix="rj")
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=4",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={rt_agent}",
           f"--metrics-export-port={metrics}", f"--node-manager-port={nm}",
           f"--object-manager-port={om}", f"--temp-dir={temp_dir}"]
    head = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dash}"
    try:
        wait_for(f"{address}/api/version", timeout=90)
        yield address, env
    finally:
        # Graceful first; the head's process group holds every process it started.
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()


def test_ray_job_submit_trains_and_writes_artifacts(local_head, tmp_path):
    address, env = local_head
    overrides = [
        "model.name=tiny-random", f"data.output_dir={tmp_path / 'data'}",
        f"training.storage_path={tmp_path / 'runs'}", "training.run_name=job",
        "training.max_steps=2", "training.eval_steps=2", "training.save_steps=2",
        "training.eval_mcq_limit=4",
    ]
    cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
           "--", "python", "jobs/train.py", "--config", "jobs/configs/smoke.yaml", *overrides]
    for _ in range(6):  # a head that has just started may not have its job agent up yet
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=420)
        if "No available agent to submit job" not in done.stderr:
            break
        time.sleep(5)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout.lower(), done.stdout[-3000:]

    summary = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith('{"checkpoint"')))
    adapter = Path(summary["checkpoint"])
    assert adapter.is_relative_to(tmp_path / "runs" / "job")
    for name in ("adapter_model.safetensors", "adapter_config.json", "medqa_config.yaml", "tokenizer.json"):
        assert (adapter / name).exists(), name
    assert summary["global_step"] == 2
    # The job built the prepared data itself (none existed).
    assert any((tmp_path / "data" / "train").glob("*.parquet"))
