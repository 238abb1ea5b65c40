"""The model deployment: one copy of the model behind `@serve.batch` scoring and generation,
streamed generation, and the LoRA adapters requests choose.

Every request in a batch succeeds or fails alone: the batch runs whole, and if it
raises, each request runs by itself and only the one at fault gets an error
result (`{"error", "status"}`), which the ingress turns into that request's 4xx.

Adapters: a request for one carries Serve's `multiplexed_model_id` (its name). Serve
routes it to a replica that holds the adapter, keeps at most
`serving.max_adapters_per_replica` loaded per replica (least recently used unloaded
first) and splits batches by adapter, so one batch runs under one adapter. Everything
that touches the model (forward passes, loading and unloading adapters) runs on the
replica's one model thread, so an adapter never changes under a running batch.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Optional

from ray import serve

from medqa.config import ModelConfig, ServingConfig
from medqa.evaluation.calibration import Calibration
from medqa.serving.batching import BatchMerger, GenerationItem, group_by_settings, isolate
from medqa.serving.calibrated import calibrated_scores, describe

MERGED_BATCHES = 4
"""Ray batches a model replica lets in at once: one runs, the others wait at the
model and are merged (`BatchMerger`). `max_ongoing_requests` >= max_batch_size *
this lets every merged batch fill."""


def failure(status: int, message: str) -> dict:
    return {"error": message, "status": status}


class LoadedAdapter:
    """What Serve's multiplexing holds per loaded adapter: unloading it (Serve calls `__del__`
    when it evicts the adapter) removes the adapter from the model, on the model thread."""

    def __init__(self, replica: "MedQAModel", name: str):
        self.replica, self.name, self.gone = replica, name, False

    def __del__(self):
        if not self.gone:  # Serve calls it on eviction; the garbage collector may call it again
            self.gone = True
            self.replica.executor.submit(self.replica.unload_adapter, self.name)


@serve.deployment(name="MedQAModel", max_ongoing_requests=32)
class MedQAModel:
    def __init__(self, model: dict, serving: dict, calibrations: Optional[dict] = None):
        import torch

        from medqa.modeling.adapters import AdapterSet
        from medqa.modeling.generation import InferencePipeline
        from medqa.modeling.loading import load_model, load_tokenizer
        from medqa.modeling.scoring import context_length

        cfg, settings = ModelConfig(**model), ServingConfig(**serving)
        self.name, self.adapter, self.adapter_dirs = cfg.name, settings.adapter, dict(settings.adapters)
        self.tokenizer = load_tokenizer(cfg)
        self.adapters = AdapterSet(load_model(cfg), settings.adapter)
        self.adapters.model.eval()
        # Read by build_app (a bad file never gets this far); "" is the served model, else an adapter's name.
        self.calibrations = {name: Calibration.from_dict(c) for name, c in (calibrations or {}).items()}
        self.pipeline = InferencePipeline(self.adapters.model, self.tokenizer)
        self.context_tokens = context_length(self.adapters.model, self.tokenizer)
        self.gpu = torch.cuda.is_available()
        # One thread for everything that touches the model: torch's OpenMP pool belongs to the
        # calling thread, and adapters must not change under a running forward pass.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medqa-model")
        self.merger = BatchMerger(settings.max_batch_size, self.executor)
        for handler in (self.score, self.generate):
            handler.set_max_batch_size(settings.max_batch_size)
            handler.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)
        # Bound at run time: the LRU size is the operator's setting (Ray detects instance-level multiplexing).
        self._load_adapter = serve.multiplexed(max_num_models_per_replica=settings.max_adapters_per_replica)(
            self._loader())

    # ---- adapters

    def _loader(self):
        async def load(name: str) -> LoadedAdapter:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._ensure, name)
            return LoadedAdapter(self, name)

        return load

    def _ensure(self, name: Optional[str]) -> None:
        """The adapter loaded (on the model thread); it may have been evicted since it was routed here."""
        if name and name not in self.adapters.loaded:
            self.adapters.load(name, self.adapter_dirs[name])
            self.pipeline.model = self.adapters.model  # the first load wraps the base model

    @contextmanager
    def _under(self, adapter: Optional[str]):
        """The model with `adapter` loaded (again, if it was evicted) and active, on the model thread."""
        self._ensure(adapter)
        with self.adapters.active(adapter):
            yield

    def unload_adapter(self, name: str) -> None:
        """On the model thread (Serve evicted it); the last one out unwraps the base model."""
        self.adapters.unload(name)
        self.pipeline.model = self.adapters.model

    async def _requested_adapter(self) -> Optional[str]:
        """This request's adapter (None: the served model), loaded through Serve's multiplexing."""
        name = serve.get_multiplexed_model_id() or None
        if name is not None:
            if name not in self.adapter_dirs:  # the ingress checks; a direct handle call might not
                raise ValueError(f"no adapter named {name!r} on this server")
            await self._load_adapter(name)
        return name

    # ---- scoring

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def score(self, items: list[dict]) -> list[dict]:
        adapter = await self._requested_adapter()  # one per batch: Serve splits batches by adapter
        return await self.merger.run(_kind("score", adapter), partial(self._score, adapter), items)

    def _score(self, adapter: Optional[str], items: list[dict], abandoned=None) -> list[dict]:
        """One forward pass (not worth stopping early) under `adapter`, calibrated with its calibration."""
        from medqa.data.record import MCQRecord
        from medqa.modeling.scoring import score_records

        cal = self.calibrations.get(adapter or "")

        def scorer(records: list) -> list:
            return score_records(self.adapters.model, self.tokenizer, list(records),
                                 method=cal.method if cal else "letter", batch_size=len(records))

        def run(batch: list[dict]) -> list[dict]:
            records = [MCQRecord(question=i["question"], options=list(i["options"])) for i in batch]
            if cal is None:
                return [{"probabilities": s.probabilities} for s in scorer(records)]
            return calibrated_scores(cal, records, [i.get("subject") for i in batch], scorer)

        def one(item: dict) -> dict:
            try:
                return run([item])[0]
            except ValueError as err:  # the scorer's own complaint about this input
                return failure(422, str(err))
            except Exception:  # noqa: BLE001 - this request fails, the others go on
                return failure(500, "scoring failed")

        with self._under(adapter):
            return isolate(run, one, items)

    # ---- generation

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def generate(self, items: list[dict]) -> list[dict]:
        adapter = await self._requested_adapter()
        return await self.merger.run(_kind("generate", adapter), partial(self._generate, adapter), items)

    def _generate(self, adapter: Optional[str], raw: list[dict], abandoned: Optional[threading.Event] = None
                  ) -> list[dict]:
        items = [GenerationItem.from_dict(r) for r in raw]
        prompts = [self._prompt(item) for item in items]
        stop = abandoned.is_set if abandoned else None
        results: list[Optional[dict]] = [p if isinstance(p, dict) else None for p in prompts]
        with self._under(adapter):
            for group in group_by_settings(items):
                todo = [i for i in group if results[i] is None]
                for i, result in zip(todo, isolate(lambda idx: self._generate_same(items, prompts, idx, stop),
                                                   lambda i: self._generate_alone(items, prompts, i, stop), todo),
                                       strict=True):
                    results[i] = result
        return results

    def _prompt(self, item: GenerationItem):
        """(prompt text, its tokens, stop sequences) for an item, or a 413 failure when it cannot fit
        the model's context with its new tokens. A conversation is formatted with the model's chat
        template, its oldest turns dropped to fit."""
        from medqa.modeling import chat
        from medqa.modeling.generation import DEFAULT_STOP

        try:
            if item.messages:
                budget = self.context_tokens - item.max_length
                kept, _ = chat.fit(self.tokenizer, [{"role": r, "content": c} for r, c in item.messages], budget)
                text, stops = chat.render(self.tokenizer, kept), chat.stops(self.tokenizer) + item.stop
            else:
                text, stops = self.pipeline.prompt_text(item.question, item.concise), DEFAULT_STOP + item.stop
        except ValueError as err:  # not even the last turn fits
            return failure(413, str(err))
        tokens = self.pipeline.count_tokens(text)
        if tokens + item.max_length > self.context_tokens:
            return failure(413, f"the prompt is {tokens} tokens and max_length {item.max_length}: together they "
                                f"exceed the model's context of {self.context_tokens} tokens")
        return text, tokens, stops

    def _generate_same(self, items: list[GenerationItem], prompts: list, indices: list[int], stop=None) -> list[dict]:
        """One `generate` call for requests with equal settings."""
        first, (_, _, stops) = items[indices[0]], prompts[indices[0]]
        texts = self.pipeline.generate_batch(
            prompts=[prompts[i][0] for i in indices], temperature=first.temperature, max_length=first.max_length,
            length_penalty=first.length_penalty, num_beams=first.num_beams, stop=stops, seed=first.seed,
            should_stop=stop,
        )
        return [{"text": text, "completion_tokens": self.pipeline.count_tokens(text), "prompt_tokens": prompts[i][1]}
                for i, text in zip(indices, texts, strict=True)]

    def _generate_alone(self, items: list[GenerationItem], prompts: list, i: int, stop=None) -> dict:
        try:
            return self._generate_same(items, prompts, [i], stop)[0]
        except ValueError as err:
            return failure(422, str(err))
        except Exception:  # noqa: BLE001 - this request fails, the others go on
            return failure(500, "generation failed")

    # ---- streamed generation

    async def generate_stream(self, raw: dict):
        """`{"text": piece}` events as the model writes them, then one `{"done", "prompt_tokens",
        "completion_tokens", "finish_reason"}` (or `{"error", "status"}`). Called with
        `handle.options(stream=True)`; a caller that leaves stops the generation at its next token."""
        adapter = await self._requested_adapter()
        item = GenerationItem.from_dict(raw)
        loop, pieces, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def work() -> dict:
            prompt = self._prompt(item)
            if isinstance(prompt, dict):
                return prompt
            text, tokens, stops = prompt
            with self._under(adapter):
                summary = self.pipeline.stream(
                    text, lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece),
                    temperature=item.temperature, max_length=item.max_length, stop=stops, seed=item.seed,
                    should_stop=stop.is_set)
            return {"done": True, "prompt_tokens": tokens, "completion_tokens": summary.completion_tokens,
                    "finish_reason": summary.finish_reason}

        async with self.merger.lock:  # one forward pass at a time, batched or streamed
            future = loop.run_in_executor(self.executor, work)
            future.add_done_callback(lambda _: pieces.put_nowait(None))  # after every piece: both go through the loop
            try:
                while (piece := await pieces.get()) is not None:
                    yield {"text": piece}
                try:
                    yield await future
                except ValueError as err:
                    yield failure(422, str(err))
                except Exception:  # noqa: BLE001 - this request fails, the others go on
                    yield failure(500, "generation failed")
            finally:
                stop.set()
                if not future.done():  # hold the lock until the model is free
                    await asyncio.wait([future])

    # ---- introspection (health, tests, benchmarks)

    def info(self) -> dict:
        import torch

        context = serve.get_replica_context()
        return {"model": self.name, "adapter": self.adapter, "gpu_available": self.gpu,
                "calibration": describe(self.calibrations.get("")), "adapters": sorted(self.adapter_dirs),
                "adapters_loaded": sorted(self.adapters.loaded),
                "device": str(next(self.adapters.model.parameters()).device),
                "torch_threads": torch.get_num_threads(), "context_tokens": self.context_tokens,
                "replica": context.replica_id.unique_id, "actor_name": context.replica_id.to_full_id_str()}

    def stats(self) -> dict:
        """Batch sizes this replica has run per kind ("score", "generate"; ":name" for an adapter's)."""
        return {"score": {}, "generate": {}, **self.merger.stats(),
                "replica": serve.get_replica_context().replica_id.unique_id}


def _kind(work: str, adapter: Optional[str]) -> str:
    """BatchMerger merges only batches of one kind: one per adapter, as Serve splits them."""
    return work if adapter is None else f"{work}:{adapter}"
