"""API key, and recovery from a killed model replica under load."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from serving_helpers import deploy_extra

pytestmark = pytest.mark.ray

MCQ = {"question": "Which vitamin deficiency causes scurvy?", "options": ["A", "B12", "C", "D"]}


def test_api_key_required_when_configured(serve_url, tmp_path):
    from ray import serve

    secret = tmp_path / "api-key"
    secret.write_text("s3cret\n")  # as a mounted Kubernetes Secret: read by the replica, trailing newline and all
    url = deploy_extra(serve_url, "secured", api_key_file=str(secret))
    details_seen = _serve_details()  # what the dashboard's Serve page and `serve status` show, while it runs
    assert "secured" in json.dumps(details_seen, default=str)
    try:
        assert requests.get(url + "/health", timeout=30).json() == {"status": "healthy"}  # nothing more without the key
        details = requests.get(url + "/health", headers={"Authorization": "Bearer s3cret"}, timeout=30).json()
        assert details["api_key_required"] is True and details["model"] == "tiny-random"
        missing = requests.post(url + "/v1/mcq", json=MCQ, timeout=30)
        wrong = requests.post(url + "/v1/mcq", json=MCQ, headers={"Authorization": "Bearer nope"}, timeout=30)
        assert missing.status_code == wrong.status_code == 401
        assert "API key" in missing.json()["error"]
        # Authentication comes before parsing: a malformed body without a key learns nothing of the schema.
        for body in ("{not json", '{"question": 3}', '{"question": "' + "x" * 300_000 + '"}'):  # nor the size limit
            r = requests.post(url + "/v1/mcq", data=body, headers={"Content-Type": "application/json"}, timeout=30)
            assert r.status_code == 401 and "details" not in r.json(), r.text
        for path in ("/docs", "/openapi.json"):
            assert requests.get(url + path, timeout=30).status_code == 401
            assert requests.get(url + path, headers={"X-API-Key": "s3cret"}, timeout=30).status_code == 200
        ok = requests.post(url + "/v1/mcq", json=MCQ, headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.status_code == 200 and len(ok.json()["probabilities"]) == 4
        chat = requests.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                             headers={"X-API-Key": "s3cret"}, timeout=30)
        assert chat.status_code == 200
    finally:
        serve.delete("secured")
    # The shared app was built without the key: still open.
    assert requests.post(serve_url + "/v1/mcq", json=MCQ, timeout=30).status_code == 200
    # ... and the key never reached Ray: not in the deployment details the dashboard shows, nor in any log file.
    assert "s3cret" not in json.dumps(details_seen, default=str)
    assert not _files_containing(_ray_logs(), "s3cret")


def _serve_details() -> dict:
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()


def _ray_logs() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"


def _files_containing(folder: Path, needle: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(path.name)
    return found


def _load(url: str, stop: threading.Event, log: list) -> None:
    """One client: sequential /v1/mcq calls, each logged as (finish time, status)."""
    while not stop.is_set():
        try:
            status = requests.post(url + "/v1/mcq", json=MCQ, timeout=30).status_code
        except requests.RequestException:
            status = -1
        log.append((time.time(), status))


def _model_replicas() -> set[str]:
    """Actor names of the model replicas that answer (the handle spreads calls over them)."""
    from ray import serve

    handle, names = serve.get_deployment_handle("MedQAModel", app_name="medqa"), set()
    for _ in range(12):
        try:
            names.add(handle.info.remote().result(timeout_s=10)["actor_name"])
        except Exception:  # noqa: BLE001 - a dead replica's call fails; the live ones answer
            pass
    return names


def _recovered(killed: str) -> bool:
    """Two replicas running again, and the killed one is not among them."""
    if not _healthy_with(2):
        return False
    names = _model_replicas()
    return len(names) == 2 and killed not in names


def _healthy_with(n: int) -> bool:
    from ray import serve

    app = serve.status().applications.get("medqa")
    dep = app and app.deployments.get("MedQAModel")
    return bool(dep) and dep.status == "HEALTHY" and dep.replica_states.get("RUNNING", 0) == n


def test_killed_model_replica_recovers_under_load(serve_url):
    import ray

    # The shared app runs two model replicas; the UI tests run after this one on the recovered app.
    url = serve_url
    replicas = _model_replicas()
    assert len(replicas) == 2, replicas
    stop, log = threading.Event(), []
    clients = [threading.Thread(target=_load, args=(url, stop, log)) for _ in range(2)]
    for c in clients:
        c.start()
    try:
        time.sleep(3)
        killed_at = time.time()
        killed = sorted(replicas)[0]
        ray.kill(ray.get_actor(killed, namespace="serve"), no_restart=True)
        deadline = killed_at + 90
        while not _recovered(killed) and time.time() < deadline:
            time.sleep(0.5)
        recovered_at = time.time()
        assert _recovered(killed), "the model deployment did not get back to 2 live replicas"
        time.sleep(5)  # keep the load on after recovery
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=60)
    before = [s for t, s in log if t < killed_at]
    during = [s for t, s in log if killed_at <= t < recovered_at]
    after = [s for t, s in log if t >= recovered_at]
    failed = lambda xs: sum(s != 200 for s in xs)  # noqa: E731
    print(f"\nreplica kill: recovery took {recovered_at - killed_at:.1f} s; failed requests "
          f"before {failed(before)}/{len(before)}, during {failed(during)}/{len(during)}, "
          f"after {failed(after)}/{len(after)}")
    assert before and after and failed(before) == 0
    assert failed(after) == 0
    assert failed(during) <= max(1, len(during) // 100), "more than 1% failed while recovering"
