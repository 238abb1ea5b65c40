"""Every use of Ray's private APIs in medqa, in one file, for one Ray version.

Each function below reaches past Ray's public API (internal modules, the GCS key-value
store, Tune's saved experiment state). They were written for and tested against
`RAY_VERSION`; tests/test_runtime.py fails when the installed Ray is another version, so
whoever upgrades Ray checks each of them first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

RAY_VERSION = "2.60.0"
KV_NAMESPACE = "medqa_tune_pg"


# ---------------------------------------------------------------- GCS key-value store

def kv_put(key: str, value: str) -> None:
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(key, value, namespace=KV_NAMESPACE)


def kv_get(key: bytes | str) -> Optional[bytes]:
    from ray.experimental import internal_kv

    return internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)


def kv_keys(prefix: str) -> list[bytes]:
    from ray.experimental import internal_kv

    return internal_kv._internal_kv_list(prefix, namespace=KV_NAMESPACE)


def kv_delete(key: bytes | str) -> None:
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(key, namespace=KV_NAMESPACE)


# ---------------------------------------------------------------- actors and placement groups

def actor_dead(actor_id: str) -> bool:
    """Whether the GCS reports the actor DEAD; an unknown or unanswered lookup is not death."""
    import ray

    try:
        info = ray._private.state.actors(actor_id)
    except Exception:  # noqa: BLE001 - GCS busy or unreachable: decide later
        return False
    return bool(info) and info.get("State") == "DEAD"


def remove_placement_group(pg_hex: str) -> None:
    """Remove the placement group with this id, unless it is gone already."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group as remove

    pg = PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex)))
    if placement_group_table(pg).get("state") not in (None, "REMOVED"):
        remove(pg)


def train_callback_bases() -> tuple[type, type]:
    """Ray Train V2's controller and worker-group callback classes (not public in 2.60)."""
    from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

    return ControllerCallback, WorkerGroupCallback


# ---------------------------------------------------------------- Serve

def serve_proxy_host() -> str:
    """The host Serve's proxies bind to, as the controller holds it (a Serve config's http_options)."""
    from ray.serve.context import _get_global_client

    return _get_global_client().http_config.host


def serve_client():
    """The running Serve instance's controller client (its `http_config` says where the proxy
    listens), or None when Serve is not running or Ray is not initialised."""
    import ray
    from ray.serve.context import _get_global_client

    if not ray.is_initialized():  # Serve's lookup would start a Ray of its own
        return None
    return _get_global_client(raise_if_no_controller_running=False)


def serve_start(http_options: dict, proxy_location):
    """Serve's own start for a declarative config: what `serve run config.yaml` calls."""
    from ray.serve._private.api import serve_start as start

    return start(http_options=http_options, proxy_location=proxy_location)


# ---------------------------------------------------------------- Tune

def tune_saved_statuses(search_dir: Path) -> dict[str, str]:
    """Trial id -> status as saved in Tune's latest experiment state (what `Tuner.restore` reads).

    The in-memory `ResultGrid` marks trials cut off by an interrupt as terminated; the saved
    state keeps them RUNNING, so they rerun on restore.
    """
    # Named by start time; mtimes are useless (storage sync touches every file).
    states = sorted(Path(search_dir).glob("experiment_state-*.json"))
    if not states:
        return {}
    statuses = {}
    for trial_json, *_ in json.loads(states[-1].read_text()).get("trial_data", []):
        trial = json.loads(trial_json) if isinstance(trial_json, str) else trial_json
        statuses[trial.get("trial_id")] = trial.get("status")
    return statuses
