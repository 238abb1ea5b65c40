"""The model deployment: one copy of the model behind `@serve.batch` scoring and generation.

Every request in a batch succeeds or fails alone: the batch runs whole, and if it
raises, each request runs by itself and only the one at fault gets an error
result (`{"error", "status"}`), which the ingress turns into that request's 4xx.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ray import serve

from medqa.config import ModelConfig
from medqa.evaluation.calibration import Calibration
from medqa.serving.batching import BatchMerger, GenerationItem, group_by_settings, isolate
from medqa.serving.calibrated import calibrated_scores, describe

MERGED_BATCHES = 4
"""Ray batches a model replica lets in at once: one runs, the others wait at the
model and are merged (`BatchMerger`). `max_ongoing_requests` >= max_batch_size *
this lets every merged batch fill."""


def failure(status: int, message: str) -> dict:
    return {"error": message, "status": status}


@serve.deployment(name="MedQAModel", max_ongoing_requests=32)
class MedQAModel:
    def __init__(self, model: dict, adapter: Optional[str] = None, max_batch_size: int = 8,
                 batch_wait_timeout_s: float = 0.02, calibration: Optional[dict] = None):
        import torch

        from medqa.modeling.generation import InferencePipeline
        from medqa.modeling.loading import load_model, load_tokenizer
        from medqa.modeling.scoring import context_length

        cfg = ModelConfig(**model)
        self.name, self.adapter = cfg.name, adapter
        self.tokenizer = load_tokenizer(cfg)
        self.model = load_model(cfg)
        if adapter:
            from medqa.modeling.lora import load_adapter

            self.model = load_adapter(self.model, adapter)
        self.model.eval()
        # Read by build_app (a bad file never gets this far); None scores as the model does.
        self.calibration = Calibration.from_dict(calibration) if calibration else None
        self.pipeline = InferencePipeline(self.model, self.tokenizer)
        self.context_tokens = context_length(self.model, self.tokenizer)
        self.gpu = torch.cuda.is_available()
        self.merger = BatchMerger(max_batch_size, ThreadPoolExecutor(max_workers=1, thread_name_prefix="medqa-model"))
        for handler in (self.score, self.generate):
            handler.set_max_batch_size(max_batch_size)
            handler.set_batch_wait_timeout_s(batch_wait_timeout_s)

    # ---- scoring

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def score(self, items: list[dict]) -> list[dict]:
        return await self.merger.run("score", self._score, items)

    def _score(self, items: list[dict], abandoned=None) -> list[dict]:  # one forward pass: not worth stopping
        from medqa.data.record import MCQRecord
        from medqa.modeling.scoring import score_records

        cal = self.calibration

        def scorer(records: list) -> list:
            return score_records(self.model, self.tokenizer, list(records), method=cal.method if cal else "letter",
                                 batch_size=len(records))

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

        return isolate(run, one, items)

    # ---- generation

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def generate(self, items: list[dict]) -> list[dict]:
        return await self.merger.run("generate", self._generate, items)

    def _generate(self, raw: list[dict], abandoned: Optional[threading.Event] = None) -> list[dict]:
        items = [GenerationItem.from_dict(r) for r in raw]
        prompts = [self.pipeline.prompt_tokens(item.question, item.concise) for item in items]
        stop = abandoned.is_set if abandoned else None
        results: list[Optional[dict]] = [self._too_long(item, n) for item, n in zip(items, prompts)]
        for group in group_by_settings(items):
            todo = [i for i in group if results[i] is None]
            for i, result in zip(todo, isolate(lambda idx: self._generate_same(items, prompts, idx, stop),
                                               lambda i: self._generate_alone(items, prompts, i, stop), todo),
                                   strict=True):
                results[i] = result
        return results

    def _too_long(self, item: GenerationItem, prompt: int) -> Optional[dict]:
        """A 413 when the prompt's tokens and the new tokens cannot fit the model's context."""
        if prompt + item.max_length > self.context_tokens:
            return failure(413, f"the prompt is {prompt} tokens and max_length {item.max_length}: together they "
                                f"exceed the model's context of {self.context_tokens} tokens")
        return None

    def _generate_same(self, items: list[GenerationItem], prompts: list[int], indices: list[int],
                       stop=None) -> list[dict]:
        """One `generate` call for requests with equal settings (`prompts`: their prompt tokens)."""
        from medqa.modeling.generation import DEFAULT_STOP

        first = items[indices[0]]
        texts = self.pipeline.generate_batch(
            [items[i].question for i in indices], temperature=first.temperature, max_length=first.max_length,
            length_penalty=first.length_penalty, num_beams=first.num_beams, concise=first.concise,
            stop=DEFAULT_STOP + first.stop, seed=first.seed, should_stop=stop,
        )
        return [{"text": text,
                 "completion_tokens": len(self.tokenizer(text, add_special_tokens=False)["input_ids"]),
                 "prompt_tokens": prompts[i]}
                for i, text in zip(indices, texts, strict=True)]

    def _generate_alone(self, items: list[GenerationItem], prompts: list[int], i: int, stop=None) -> dict:
        try:
            return self._generate_same(items, prompts, [i], stop)[0]
        except ValueError as err:
            return failure(422, str(err))
        except Exception:  # noqa: BLE001 - this request fails, the others go on
            return failure(500, "generation failed")

    # ---- introspection (health, tests, benchmarks)

    def info(self) -> dict:
        import torch

        context = serve.get_replica_context()
        return {"model": self.name, "adapter": self.adapter, "gpu_available": self.gpu,
                "calibration": describe(self.calibration),
                "device": str(next(self.model.parameters()).device), "torch_threads": torch.get_num_threads(),
                "context_tokens": self.context_tokens, "replica": context.replica_id.unique_id,
                "actor_name": context.replica_id.to_full_id_str()}

    def stats(self) -> dict:
        """Batch sizes this replica has run (tests and benchmarks check batching happened)."""
        return {"score": {}, "generate": {}, **self.merger.stats(),
                "replica": serve.get_replica_context().replica_id.unique_id}
