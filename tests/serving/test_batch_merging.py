"""Batches that wait for a busy model run merged (MedQAModel._run_batch), no Serve needed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

import pytest

from medqa.serving.app import MedQAModel


def bare_model(max_batch_size: int):
    """The deployment's class without its model: only what the batching path uses."""
    cls = MedQAModel.func_or_class
    model = cls.__new__(cls)
    model.lock, model.max_batch_size = asyncio.Lock(), max_batch_size
    model.waiting = {"score": deque(), "generate": deque()}
    model.batch_sizes = {"score": Counter(), "generate": Counter()}
    model.model_thread = ThreadPoolExecutor(max_workers=1)
    return model


def slow_echo(calls: list):
    def work(items):
        calls.append(list(items))
        time.sleep(0.05)  # the model is busy while the later fragments arrive
        if "bad" in items:
            raise ValueError("bad item")
        return [{"echo": item} for item in items]
    return work


async def fragments(model, work, *batches):
    async def one(batch, delay):
        await asyncio.sleep(delay)
        return await model._run_batch("score", work, batch)
    return await asyncio.gather(*(one(b, 0.001 * i) for i, b in enumerate(batches)), return_exceptions=True)


def test_fragments_waiting_for_the_model_run_as_one_batch_and_get_their_own_results():
    model, calls = bare_model(max_batch_size=4), []
    out = asyncio.run(fragments(model, slow_echo(calls), ["a"], ["b", "c"], ["d"], ["e", "f"]))
    # "a" runs alone; b, c and d arrive while it runs and merge; e, f would make 5 > 4.
    assert calls == [["a"], ["b", "c", "d"], ["e", "f"]]
    assert [[r["echo"] for r in results] for results in out] == [["a"], ["b", "c"], ["d"], ["e", "f"]]
    assert [r["batch_size"] for r in out[1]] == [3, 3]
    assert model.batch_sizes["score"] == Counter({1: 1, 3: 1, 2: 1})


def test_an_error_reaches_every_caller_of_its_merged_batch_only():
    model, calls = bare_model(max_batch_size=8), []
    out = asyncio.run(fragments(model, slow_echo(calls), ["a"], ["bad"], ["c"]))
    assert calls == [["a"], ["bad", "c"]]
    assert [(r["echo"], r["batch_size"]) for r in out[0]] == [("a", 1)] and out[0][0]["compute_ms"] >= 50
    assert all(isinstance(r, ValueError) for r in out[1:])


@pytest.mark.parametrize("max_batch_size", [1, 2])
def test_merging_never_exceeds_max_batch_size(max_batch_size):
    model, calls = bare_model(max_batch_size), []
    asyncio.run(fragments(model, slow_echo(calls), ["a"], ["b"], ["c"], ["d"], ["e"]))
    assert max(len(c) for c in calls) == max_batch_size
    assert sorted(x for c in calls for x in c) == ["a", "b", "c", "d", "e"]
