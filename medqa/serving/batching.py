"""The batches a model replica runs: merging the fragments a busy replica is handed,
and grouping a generation batch by settings (asyncio only: no Ray, no model).

Ray's `@serve.batch` closes a batch `batch_wait_timeout_s` after its first
request even while the model is busy, so under load a replica is handed
fragments of whatever arrived in that window. `BatchMerger` runs one batch at a
time on the model's thread; fragments that wait for it run merged, up to
`max_batch_size`, so the batch grows with the load instead of with the timeout.

Work functions take a list of items and a `threading.Event` that is set once
every caller of the batch has left (timed out, disconnected), so long work can
stop early; they return one result dict per item and isolate failures themselves
(an item that fails gets `{"error": ..., "status": ...}`), so a merged batch
never fails a request for another request's fault.

`GenerationItem` is one generation request; `group_by_settings` splits a batch
into the groups that can share one `generate` call.

May import: nothing of medqa.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

Work = Callable[[list, threading.Event], list[dict]]


class BatchMerger:
    def __init__(self, max_batch_size: int, executor: Executor):
        self.max_batch_size = max_batch_size
        # Always the same thread: torch's OpenMP pool belongs to the calling thread, so a
        # rotating pool of callers keeps several pools competing for the cores.
        self.executor = executor
        self.lock = asyncio.Lock()  # one forward pass at a time: scoring and generation share the cores
        self.waiting: dict[str, deque] = defaultdict(deque)
        self.batch_sizes: dict[str, Counter] = defaultdict(Counter)

    async def run(self, kind: str, work: Work, items: list) -> list[dict]:
        """`work(items)` once the model is free, merged with whatever else of this kind waits."""
        mine = (items, asyncio.get_running_loop().create_future())
        self.waiting[kind].append(mine)
        try:
            async with self.lock:
                if not mine[1].done():  # else an earlier holder of the lock ran it merged with its own
                    # Shielded: if this caller leaves mid-run, the others merged with it still get results.
                    await asyncio.shield(self._run_merged(kind, work))
            return await mine[1]
        except asyncio.CancelledError:  # the caller left (timeout, disconnect): nobody runs its items
            mine[1].cancel()
            raise

    async def _run_merged(self, kind: str, work: Work) -> None:
        waiting, group, size = self.waiting[kind], [], 0
        while waiting and (not group or size + len(waiting[0][0]) <= self.max_batch_size):
            group.append(waiting.popleft())
            size += len(group[-1][0])
        group = [(items, future) for items, future in group if not future.done()]  # callers gone: skip their work
        if not group:
            return
        merged = [item for items, _ in group for item in items]
        self.batch_sizes[kind][len(merged)] += 1
        abandoned = threading.Event()
        for _, future in group:
            future.add_done_callback(lambda _: all(f.cancelled() for _, f in group) and abandoned.set())
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, work, merged, abandoned)
        except Exception as err:  # noqa: BLE001 - a fault of the work itself reaches every caller
            for _, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        tags = {"batch_size": len(merged), "compute_ms": round((time.perf_counter() - started) * 1000, 1)}
        start = 0
        for items, future in group:
            if not future.done():  # a caller that went away has cancelled its future
                future.set_result([{**r, **tags} for r in results[start:start + len(items)]])
            start += len(items)

    def stats(self) -> dict:
        return {kind: dict(t) for kind, t in self.batch_sizes.items()}


def isolate(run_all: Callable[[list], list[dict]], run_one: Callable[[object], dict], items: list) -> list[dict]:
    """`run_all(items)`; if it raises, each item alone, so one bad item fails alone.

    `run_one` turns its own failure into an error result for its item.
    """
    if len(items) > 1:
        try:
            return run_all(items)
        except Exception:  # noqa: BLE001 - retried item by item below
            pass
    return [run_one(item) for item in items]


@dataclass(frozen=True)
class GenerationItem:
    question: str
    temperature: float = 0.7
    max_length: int = 100
    length_penalty: float = 1.0
    num_beams: int = 1
    concise: bool = False
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    messages: tuple[tuple[str, str], ...] = ()
    """A chat's (role, content) turns: the prompt is the conversation, not `question`."""

    @classmethod
    def from_dict(cls, raw: dict) -> "GenerationItem":
        return cls(**{**raw, "stop": tuple(raw.get("stop", ())),
                      "messages": tuple((str(r), str(c)) for r, c in raw.get("messages", ()))})

    def settings(self) -> tuple:
        """Requests with equal settings share one `generate` call (a chat's stop sequences are its template's)."""
        return (self.temperature, self.max_length, self.length_penalty, self.num_beams, self.concise, self.stop,
                self.seed, bool(self.messages))


def group_by_settings(items: Sequence[GenerationItem]) -> list[list[int]]:
    """Indices of a `@serve.batch` batch grouped by generation settings, in first-seen order.

    `model.generate` takes one temperature, length and stop list per call, so a
    batch of mixed settings runs as one call per group.
    """
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.settings(), []).append(i)
    return list(groups.values())
