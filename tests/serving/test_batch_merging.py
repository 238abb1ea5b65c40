"""Batches that wait for a busy model run merged (BatchMerger); one bad item fails alone;
a generation batch splits by settings."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from medqa.serving.batching import BatchMerger, GenerationItem, group_by_settings, isolate


def merger(max_batch_size: int) -> BatchMerger:
    return BatchMerger(max_batch_size, ThreadPoolExecutor(max_workers=1))


def slow_echo(calls: list):
    def work(items, abandoned=None):
        calls.append(list(items))
        time.sleep(0.05)  # the model is busy while the later fragments arrive
        if "bad" in items:
            raise ValueError("bad item")
        return [{"echo": item} for item in items]
    return work


async def fragments(m: BatchMerger, work, *batches):
    async def one(batch, delay):
        await asyncio.sleep(delay)
        return await m.run("score", work, batch)
    return await asyncio.gather(*(one(b, 0.001 * i) for i, b in enumerate(batches)), return_exceptions=True)


def test_fragments_waiting_for_the_model_run_as_one_batch_and_get_their_own_results():
    m, calls = merger(max_batch_size=4), []
    out = asyncio.run(fragments(m, slow_echo(calls), ["a"], ["b", "c"], ["d"], ["e", "f"]))
    # "a" runs alone; b, c and d arrive while it runs and merge; e, f would make 5 > 4.
    assert calls == [["a"], ["b", "c", "d"], ["e", "f"]]
    assert [[r["echo"] for r in results] for results in out] == [["a"], ["b", "c"], ["d"], ["e", "f"]]
    assert [r["batch_size"] for r in out[1]] == [3, 3]
    assert m.stats()["score"] == {1: 1, 3: 1, 2: 1}


def test_a_fault_of_the_work_reaches_every_caller_of_its_merged_batch_only():
    m, calls = merger(max_batch_size=8), []
    out = asyncio.run(fragments(m, slow_echo(calls), ["a"], ["bad"], ["c"]))
    assert calls == [["a"], ["bad", "c"]]
    assert [(r["echo"], r["batch_size"]) for r in out[0]] == [("a", 1)] and out[0][0]["compute_ms"] >= 50
    assert all(isinstance(r, ValueError) for r in out[1:])


def test_isolating_work_fails_only_the_bad_item_of_a_merged_batch():
    m, calls = merger(max_batch_size=8), []
    work = slow_echo(calls)

    def one(item):
        try:
            return work([item])[0]
        except ValueError as err:
            return {"error": str(err), "status": 422}

    out = asyncio.run(fragments(m, lambda items, _: isolate(work, one, items), ["a"], ["bad"], ["c", "d"]))
    assert out[0][0]["echo"] == "a"
    assert out[1][0]["error"] == "bad item" and out[1][0]["status"] == 422
    assert [r["echo"] for r in out[2]] == ["c", "d"]
    assert calls == [["a"], ["bad", "c", "d"], ["bad"], ["c"], ["d"]]  # whole batch, then one by one


def test_callers_that_left_are_not_computed():
    m, calls = merger(max_batch_size=8), []

    async def scenario():
        work = slow_echo(calls)
        first = asyncio.ensure_future(m.run("score", work, ["a"]))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(m.run("score", work, ["gone"]))
        await asyncio.sleep(0.005)
        gone.cancel()  # a request that timed out while waiting for the model
        kept = await m.run("score", work, ["kept"])
        return await first, kept

    first, kept = asyncio.run(scenario())
    assert first[0]["echo"] == "a" and kept[0]["echo"] == "kept"
    assert ["gone"] not in calls and all("gone" not in c for c in calls)


def test_the_others_of_a_merged_batch_get_results_when_the_caller_running_it_leaves():
    m, calls = merger(max_batch_size=8), []

    async def scenario():
        work = slow_echo(calls)
        first = asyncio.ensure_future(m.run("score", work, ["a"]))
        await asyncio.sleep(0.01)
        runner = asyncio.ensure_future(m.run("score", work, ["b"]))  # runs the next merged batch
        other = asyncio.ensure_future(m.run("score", work, ["c"]))
        await first
        await asyncio.sleep(0.01)  # b and c now run merged, in runner's turn
        runner.cancel()
        return await asyncio.wait_for(other, timeout=2)

    assert asyncio.run(scenario())[0]["echo"] == "c"
    assert calls == [["a"], ["b", "c"]]


def test_the_work_learns_when_every_caller_of_its_batch_has_left():
    m, seen = merger(max_batch_size=8), {}

    def long_work(items, abandoned):
        seen["set_in_time"] = abandoned.wait(timeout=2)  # real work polls this between steps
        return [{"echo": item} for item in items]

    async def scenario():
        callers = [asyncio.ensure_future(m.run("generate", long_work, [x])) for x in "ab"]
        await asyncio.sleep(0.05)
        for c in callers:
            c.cancel()  # both requests time out while their batch runs
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert seen == {"set_in_time": True}


def test_the_work_is_not_told_to_stop_while_a_caller_remains():
    m, seen = merger(max_batch_size=8), {}

    def long_work(items, abandoned):
        time.sleep(0.2)
        seen["abandoned"] = abandoned.is_set()
        return [{"echo": item} for item in items]

    async def scenario():
        first = asyncio.ensure_future(m.run("generate", long_work, ["a"]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(m.run("generate", long_work, ["b"]))
        kept = asyncio.ensure_future(m.run("generate", long_work, ["c"]))
        await first
        await asyncio.sleep(0.05)  # b and c now run merged
        gone.cancel()
        return await kept

    assert asyncio.run(scenario())[0]["echo"] == "c" and seen == {"abandoned": False}


@pytest.mark.parametrize("max_batch_size", [1, 2])
def test_merging_never_exceeds_max_batch_size(max_batch_size):
    m, calls = merger(max_batch_size), []
    asyncio.run(fragments(m, slow_echo(calls), ["a"], ["b"], ["c"], ["d"], ["e"]))
    assert max(len(c) for c in calls) == max_batch_size
    assert sorted(x for c in calls for x in c) == ["a", "b", "c", "d", "e"]
    assert sum(Counter(m.stats()["score"]).values()) == len(calls)


def test_generation_items_group_by_settings_in_first_seen_order():
    items = [GenerationItem("q1"), GenerationItem("q2", temperature=0.0), GenerationItem("q3"),
             GenerationItem("q4", stop=("\n",)), GenerationItem("q5", temperature=0.0)]
    assert group_by_settings(items) == [[0, 2], [1, 4], [3]]
