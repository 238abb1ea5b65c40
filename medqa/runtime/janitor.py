"""Releases the placement groups of Ray Train runs whose trial Tune stopped.

Why this exists: in Ray Train V2 each Tune trial runs a `TorchTrainer`
whose controller actor creates the workers' placement group. When ASHA stops
a trial, Tune terminates the trial actor; the controller and workers die with
it, but a placement group lives as long as the job that created it, so its
CPUs stay reserved and later trials wait forever. Ray ships a detached
`PlacementGroupCleaner` for this, but it asks the dashboard's state API whether
the controller is alive, which fails without a dashboard (`include_dashboard=
False`) or with several local Ray instances on one machine.

The fix has two halves: a Train callback in the controller records
(placement group, controller actor) in the GCS key-value store; a Tune
callback in the driver removes the groups whose controller is dead, asking
the GCS directly (no dashboard needed).
"""

from __future__ import annotations

import time

import ray
from ray.tune import Callback

from medqa.runtime import private

ControllerCallback, WorkerGroupCallback = private.train_callback_bases()


class RecordPlacementGroup(ControllerCallback, WorkerGroupCallback):
    """Runs inside the Train controller: records each worker group's placement group."""

    def __init__(self, search_id: str):
        self.search_id = search_id
        self._controller_id: str | None = None

    def after_controller_start(self, train_run_context) -> None:
        self._controller_id = ray.get_runtime_context().get_actor_id()

    def after_worker_group_start(self, worker_group) -> None:
        pg = worker_group.get_worker_group_state().placement_group_handle.placement_group
        key = f"{self.search_id}/{pg.id.hex()}"
        private.kv_put(key, self._controller_id or "")


class ReleaseOrphanedPlacementGroups(Callback):
    """Runs in the Tune driver: removes recorded groups whose controller died."""

    def __init__(self, search_id: str, every_s: float = 2.0):
        self.search_id = search_id
        self.every_s = every_s
        self._last = 0.0
        self.released = 0

    def on_step_begin(self, iteration, trials, **info) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self.sweep()

    def on_experiment_end(self, trials, **info) -> None:
        self.sweep()

    def sweep(self) -> None:
        self.released += sweep(self.search_id)


def sweep(search_id: str) -> int:
    """Remove the recorded groups whose controller is dead; returns how many."""
    released = 0
    for key in private.kv_keys(search_id + "/"):
        controller = private.kv_get(key)
        # Only a controller the GCS reports DEAD loses its group: an unknown or
        # unanswered lookup (a loaded GCS) must never kill a live trial.
        if not controller or not private.actor_dead(controller.decode()):
            continue
        private.remove_placement_group(key.decode().rsplit("/", 1)[1])
        private.kv_delete(key)
        released += 1
    return released


def release_orphans(search_id: str, wait_s: float) -> int:
    """After `Tuner.fit` returns: wait (up to `wait_s`) for stopping controllers to die, freeing their groups."""
    released, deadline = 0, time.monotonic() + wait_s
    while True:
        released += sweep(search_id)
        left = private.kv_keys(search_id + "/")
        if not left or time.monotonic() > deadline:
            return released
        time.sleep(0.5)

