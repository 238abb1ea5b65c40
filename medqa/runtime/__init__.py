"""Ray for medqa: start a local Ray or attach to a cluster, quietly, and shut it down -- the
one place the package calls `ray.init`. `private` holds every use of Ray's private APIs
(pinned to one Ray version by a test); `janitor` frees the placement groups of stopped Tune
trials.

May import: nothing of medqa (the rest of the package imports it), ray.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional


def connect(num_cpus: Optional[int] = None, address: Optional[str] = None, worker_logs: bool = True) -> bool:
    """Attach to the Ray at `address` (or RAY_ADDRESS), else start a local one with `num_cpus`
    logical CPUs and no dashboard. True when this call connected (the caller then shuts down);
    False when this process was connected already. `worker_logs=False` keeps the workers'
    output out of this terminal (it stays in Ray's log files)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = dict(log_to_driver=worker_logs, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet,
                 runtime_env={"worker_process_setup_hook": quiet_placement_group_cleaner})
    return True


@contextmanager
def session(num_cpus: Optional[int] = None, address: Optional[str] = None, worker_logs: bool = True) -> Iterator:
    """Ray for the block: connected as `connect` does, shut down after if this block connected."""
    import ray

    started = connect(num_cpus, address, worker_logs)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def quiet_placement_group_cleaner() -> None:
    """Worker setup hook for a local Ray without a dashboard: Ray Train's PlacementGroupCleaner
    asks the dashboard's state API whether the controller lives, and without one it warns about
    that every second of the run. Its job is done here by Ray at driver exit, and for stopped
    Tune trials by `medqa.runtime.janitor`."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)
