"""Evaluation at scale: the `runner.Scorer` on a Ray Data pool of model replicas.

One process scores its questions one batch at a time on one device. A pool of N replicas --
one per GPU with `gpus_per_worker=1`, or several sharing a GPU with a fraction -- scores N
blocks of questions at once, and needs no other change: `ray_scorer(...)` returns a `Scorer`
like `runner.local_scorer`, so `evaluate_model`, `fit_on` and `medqa evaluate --workers N`
use it as they use the in-process one, and the scores are the same (each replica loads the
model with `load_for_scoring` and scores with `score_records`, as `medqa evaluate` does).

How: the records (their index and their JSON) go into `ray.data.from_items`, in a few blocks
per worker of at least a forward batch each; `map_batches` runs `_Replica`, an actor class of
this module (Ray's workers import it from `medqa`, nothing is pickled by value), on a fixed
`ActorPoolStrategy` with one block in flight per actor. Every actor is started and its model
loaded before the first block is dealt (`wait_for_min_actors_s`); otherwise the first actor
ready takes every block while the others are still loading. The scored rows come back in any
order and are put back in the input order by index.

Each call runs a new pool, so the model is loaded N times per call: score everything in one
call where possible (`runner.score_rotated` does, for all the rotations of every question).

Ray is reached only through `medqa.runtime.connect`. When that call started or attached Ray,
`RayScorer.close()` (or leaving a `with` block) shuts it down; a Ray that was already up is
left running.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from typing import Optional, Sequence

from medqa import runtime
from medqa.console import err
from medqa.data.record import MCQRecord
from medqa.modeling.scoring import METHODS, MCQScore

MIN_ACTORS_WAIT_S = 600
"""How long the pool may take to start every actor (model load included) before Ray gives up."""
BLOCKS_PER_WORKER = 4
"""Blocks dealt per actor (fewer when there are too few questions for a forward batch each):
more than one, so that a replica which is slower than the others does not hold up the end."""
CPUS_PER_WORKER = 1


class _Replica:
    """A Ray Data actor: one model replica, loaded once, scoring the blocks it is dealt."""

    def __init__(self, model: Optional[str], adapter: Optional[str], load_in_4bit: bool, method: str,
                 batch_size: int):
        import ray

        from medqa.modeling.loading import load_for_scoring

        self.model, self.tokenizer, _ = load_for_scoring(model, adapter, load_in_4bit)
        self.method, self.batch_size = method, batch_size
        self.worker = ray.get_runtime_context().get_actor_id() or f"pid-{os.getpid()}"

    def __call__(self, batch):
        import pyarrow as pa

        from medqa.modeling.scoring import score_records

        records = [MCQRecord.from_dict(json.loads(row)) for row in batch.column("record").to_pylist()]
        started = time.perf_counter()
        scores = score_records(self.model, self.tokenizer, records, method=self.method, batch_size=self.batch_size)
        seconds = (time.perf_counter() - started) / max(len(records), 1)
        return pa.table({
            "index": batch.column("index").to_pylist(),
            "score": [json.dumps(asdict(s)) for s in scores],  # floats round-trip exactly through JSON
            "worker": [self.worker] * len(scores),
            "seconds": [seconds] * len(scores),
        })


class RayScorer:
    """A `Scorer` (records in, `MCQScore`s out in the same order) backed by a Ray Data pool.

    After each call, `workers_used` is the number of distinct replicas that scored in it and
    `scoring_s` the seconds they spent scoring, summed over replicas (model loads excluded).
    Use it as a context manager, or call `close()`: that shuts Ray down if this scorer
    started or attached it.
    """

    def __init__(self, model: Optional[str], adapter: Optional[str], load_in_4bit: bool, method: str,
                 batch_size: int, workers: int, gpus_per_worker: float = 0.0):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1 (model replicas in the pool), got {workers!r}")
        if not isinstance(gpus_per_worker, (int, float)) or not gpus_per_worker >= 0 or math.isinf(gpus_per_worker):
            raise ValueError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker!r}")
        if gpus_per_worker > 1 and gpus_per_worker != int(gpus_per_worker):
            raise ValueError(f"gpus_per_worker above 1 must be a whole number of GPUs, got {gpus_per_worker!r}")
        if method not in METHODS:
            raise ValueError(f"unknown scoring method {method!r}; choose one of {METHODS}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model, self.adapter, self.load_in_4bit = model, adapter, load_in_4bit
        self.method, self.batch_size = method, batch_size
        self.workers, self.gpus_per_worker = workers, float(gpus_per_worker)
        self.workers_used = 0
        self.scoring_s = 0.0
        self._owns_ray = runtime.connect(num_cpus=max(os.cpu_count() or 1, workers * CPUS_PER_WORKER))
        try:
            self._check_resources()
        except BaseException:
            self.close()
            raise

    def _check_resources(self) -> None:
        """Fail now, not after MIN_ACTORS_WAIT_S, when a Ray this scorer started cannot hold the
        pool; on a Ray that was already up (perhaps autoscaling) only say so."""
        import ray

        asks = {"CPU": self.workers * CPUS_PER_WORKER, "GPU": self.workers * self.gpus_per_worker}
        have = ray.cluster_resources()
        short = {k: (v, have.get(k, 0)) for k, v in asks.items() if v > have.get(k, 0)}
        if not short:
            return
        message = f"{self.workers} scoring worker(s) ask for more than this Ray has (asked, present): {short}"
        if self._owns_ray:
            raise RuntimeError(message)
        err.print(f"[yellow]{message}[/]; waiting up to {MIN_ACTORS_WAIT_S} s for them")

    def __call__(self, records: Sequence[MCQRecord]) -> list[MCQScore]:
        import ray.data

        records = list(records)
        self.workers_used, self.scoring_s = 0, 0.0
        if not records:
            return []
        items = [{"index": i, "record": json.dumps(r.to_dict(), default=str)} for i, r in enumerate(records)]
        per_batch = math.ceil(len(records) / self.batch_size)
        blocks = min(len(records), max(self.workers, min(BLOCKS_PER_WORKER * self.workers, per_batch)))
        context = ray.data.DataContext.get_current()
        wait_before = context.wait_for_min_actors_s
        context.wait_for_min_actors_s = MIN_ACTORS_WAIT_S  # a Dataset copies the context when built
        try:
            rows = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                _Replica,
                fn_constructor_kwargs=dict(model=self.model, adapter=self.adapter, load_in_4bit=self.load_in_4bit,
                                           method=self.method, batch_size=self.batch_size),
                batch_format="pyarrow", batch_size=None,  # one block, one call: score_records batches it
                compute=ray.data.ActorPoolStrategy(size=self.workers, max_tasks_in_flight_per_actor=1),
                num_cpus=CPUS_PER_WORKER, num_gpus=self.gpus_per_worker,
            ).take_all()
        finally:
            context.wait_for_min_actors_s = wait_before
        rows.sort(key=lambda row: row["index"])
        if [row["index"] for row in rows] != list(range(len(records))):
            raise RuntimeError(f"the scoring pool returned {len(rows)} row(s) for {len(records)} record(s)")
        self.workers_used = len({row["worker"] for row in rows})
        self.scoring_s = sum(row["seconds"] for row in rows)
        return [MCQScore(**json.loads(row["score"])) for row in rows]

    def close(self) -> None:
        """Shut Ray down if this scorer started or attached it (once; later calls do nothing)."""
        if self._owns_ray:
            import ray

            self._owns_ray = False
            ray.shutdown()

    def __enter__(self) -> "RayScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ray_scorer(model: Optional[str], adapter: Optional[str], load_in_4bit: bool, method: str, batch_size: int,
               workers: int, gpus_per_worker: float = 0.0) -> RayScorer:
    """A `Scorer` on `workers` model replicas (`model` + `adapter`, as `load_for_scoring` loads
    them), each with `gpus_per_worker` GPUs (0: CPU) and one CPU. Connects to Ray now (RAY_ADDRESS,
    else a local Ray); close it, or use it in a `with` block, to shut down a Ray it connected."""
    return RayScorer(model, adapter, load_in_4bit, method, batch_size, workers, gpus_per_worker)
