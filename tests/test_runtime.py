"""The Ray runtime module: one way to connect, and Ray's private APIs pinned to one version."""

from __future__ import annotations

import json
import time

import pytest

from medqa import runtime
from medqa.runtime import private


def test_private_apis_are_pinned_to_the_installed_ray():
    import ray

    assert ray.__version__ == private.RAY_VERSION, (
        f"Ray is {ray.__version__}, but medqa/runtime/private.py was written for {private.RAY_VERSION}: "
        "check every function there against the new Ray (and the janitor's tests), then update RAY_VERSION")


def test_tune_saved_statuses_reads_the_latest_experiment_state(tmp_path):
    def state(trials: dict) -> str:
        return json.dumps({"trial_data": [[json.dumps({"trial_id": t, "status": s}), {}] for t, s in trials.items()]})

    assert private.tune_saved_statuses(tmp_path) == {}
    (tmp_path / "experiment_state-2026-12-01_10-00-00.json").write_text(state({"a": "RUNNING"}))
    (tmp_path / "experiment_state-2026-12-01_11-00-00.json").write_text(state({"a": "TERMINATED", "b": "ERROR"}))
    assert private.tune_saved_statuses(tmp_path) == {"a": "TERMINATED", "b": "ERROR"}


@pytest.mark.ray
def test_connect_leaves_a_running_ray_alone(ray_session):
    assert runtime.connect() is False
    with runtime.session(num_cpus=1) as ray:
        assert ray.is_initialized()
    assert ray_session.is_initialized()  # the block did not start it, so it did not stop it


@pytest.mark.ray
def test_private_gcs_helpers_against_a_live_ray(ray_session):
    ray = ray_session
    private.kv_put("test-runtime/pg1", "controller-1")
    assert private.kv_get("test-runtime/pg1") == b"controller-1"
    assert private.kv_keys("test-runtime/") == [b"test-runtime/pg1"]
    private.kv_delete("test-runtime/pg1")
    assert private.kv_keys("test-runtime/") == []

    @ray.remote(num_cpus=0)
    class Probe:
        def actor_id(self) -> str:
            return ray.get_runtime_context().get_actor_id()

    probe = Probe.remote()
    actor_id = ray.get(probe.actor_id.remote())
    assert not private.actor_dead(actor_id)
    ray.kill(probe)
    deadline = time.time() + 30
    while not private.actor_dead(actor_id) and time.time() < deadline:
        time.sleep(0.2)
    assert private.actor_dead(actor_id)

    from ray.util.placement_group import placement_group, placement_group_table

    pg = placement_group([{"CPU": 0.01}])
    ray.get(pg.ready(), timeout=30)
    private.remove_placement_group(pg.id.hex())
    assert placement_group_table(pg)["state"] == "REMOVED"
    ControllerCallback, WorkerGroupCallback = private.train_callback_bases()
    assert hasattr(ControllerCallback, "after_controller_start")
    assert hasattr(WorkerGroupCallback, "after_worker_group_start")


@pytest.mark.ray
def test_serve_client_finds_the_running_serve_and_none_without_it(ray_session):
    import socket

    from ray import serve

    running = private.serve_client()
    if running is not None:  # another test's Serve, shared by the session: leave it up
        assert running.http_config.port > 0
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        client = private.serve_client()
        assert client is not None and client.http_config.port == port
        assert private.serve_proxy_host() == "127.0.0.1"
    finally:
        serve.shutdown()
    assert private.serve_client() is None
