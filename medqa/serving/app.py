"""The medqa Ray Serve application: an HTTP ingress composed with a safety
deployment and a batched model deployment through DeploymentHandles.

    MedQAIngress (FastAPI: /health /generate /v1/mcq /v1/chat/completions, OpenAPI at /docs)
      ├── SafetyGuard   input checks (emergency, harmful request) and output checks
      │                 (interactions, doses, disclaimer) through medqa.safety
      └── MedQAModel    base model (+ LoRA adapter); @serve.batch scoring and generation,
                        autoscaled between min and max replicas

Run it (foreground; Ctrl-C stops it):

    serve run serve_configs/local.yaml                       # CPU, embedded SmolLM2
    serve run medqa.serving.app:build_app model=tiny-random  # typed args (BuildArgs)
    medqa serve --config serve_configs/local.yaml            # same, with clean shutdown

Deploy it to a running cluster (returns at once; the cluster keeps serving):

    ray start --head                      # or an existing cluster / `ray up cluster.yaml`
    serve deploy serve_configs/gpu.yaml   # Phi-2 + adapter on GPUs; `serve status` to watch
    serve shutdown -y                     # remove it

Set the env var named by `serving.api_key_env` (MEDQA_API_KEY) where the app is
built to require `Authorization: Bearer <key>` on the POST endpoints.

Every answer path goes through the safety graph unless the caller sets
`use_safety: false`; even then an emergency is answered with the emergency notice
and no model output is returned. (`/v1/mcq` scores while its input is screened,
so the check adds no latency; a refused or emergency request discards that score.)
"""

import asyncio
import dataclasses
import importlib
import logging
import os
import time
import uuid
from collections import Counter as Tally, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from medqa.config import ModelConfig, ServingConfig, load_config
from medqa.serving import policy
from medqa.serving.schemas import (
    ChatCompletionRequest,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    MCQRequest,
    MCQResponse,
)

logger = logging.getLogger("ray.serve")
DEFAULT_VALIDATOR = "medqa.safety:MedicalSafetyValidator"

ERROR_RESPONSES = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                   422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


# ---------------------------------------------------------------- model deployment


MERGED_BATCHES = 4
"""Ray batches a model replica lets in at once: one runs, the others wait at the model and are
merged (see `MedQAModel._run_batch`). `max_ongoing_requests` >= max_batch_size * this lets
every merged batch fill."""


@serve.deployment(name="MedQAModel", max_ongoing_requests=32)
class MedQAModel:
    """One copy of the model. Requests queue into `@serve.batch` batches; a
    batch runs in the replica's model thread so the replica keeps answering health checks."""

    def __init__(self, model: dict, adapter: Optional[str] = None, max_batch_size: int = 8,
                 batch_wait_timeout_s: float = 0.02):
        import torch

        from medqa.inference import InferencePipeline
        from medqa.modeling.loading import load_model, load_tokenizer

        cfg = ModelConfig(**model)
        self.name, self.adapter = cfg.name, adapter
        self.tokenizer = load_tokenizer(cfg)
        self.model = load_model(cfg)
        if adapter:
            from medqa.modeling.lora import load_adapter

            self.model = load_adapter(self.model, adapter)
        self.model.eval()
        self.pipeline = InferencePipeline(self.model, self.tokenizer)
        self.gpu = torch.cuda.is_available()
        self.lock = asyncio.Lock()  # one forward pass at a time: scoring and generation share the cores
        # Always the same thread: torch's OpenMP pool belongs to the calling thread, so a
        # rotating pool of callers (asyncio.to_thread) keeps several pools competing for the cores.
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medqa-model")
        self.max_batch_size = max_batch_size
        self.waiting: dict[str, deque] = {"score": deque(), "generate": deque()}
        self.batch_sizes = {"score": Tally(), "generate": Tally()}
        for handler in (self.score, self.generate):
            handler.set_max_batch_size(max_batch_size)
            handler.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def score(self, items: list[dict]) -> list[dict]:
        return await self._run_batch("score", self._score_isolating_errors, items)

    async def _run_batch(self, kind: str, work, items: list[dict]) -> list[dict]:
        """Run a batch off the event loop (so /health still answers), one forward at a time.

        Ray closes a batch `batch_wait_timeout_s` after its first request even while the
        model is busy, so under load it hands over fragments of whatever arrived in that
        window. Fragments that wait here for the model run merged, up to max_batch_size:
        the batch grows with the load instead of with the timeout.
        """
        mine = (items, asyncio.get_running_loop().create_future())
        self.waiting[kind].append(mine)
        async with self.lock:
            if not mine[1].done():  # else an earlier holder of the lock ran it merged with its own
                await self._run_merged(kind, work)
        return await mine[1]

    async def _run_merged(self, kind: str, work) -> None:
        waiting, group, size = self.waiting[kind], [], 0
        while waiting and (not group or size + len(waiting[0][0]) <= self.max_batch_size):
            group.append(waiting.popleft())
            size += len(group[-1][0])
        merged = [item for items, _ in group for item in items]
        self.batch_sizes[kind][len(merged)] += 1
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.model_thread, work, merged)
        except Exception as err:  # noqa: BLE001 - every caller in the batch gets the error
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

    def _score_isolating_errors(self, items: list[dict]) -> list[dict]:
        """Score the batch; if it fails, score one by one so one bad request fails alone."""
        from medqa.data.record import MCQRecord
        from medqa.evaluation.mcq import score_records

        records = [MCQRecord(question=i["question"], options=list(i["options"])) for i in items]
        try:
            scores = score_records(self.model, self.tokenizer, records, batch_size=len(records))
            return [{"probabilities": s.probabilities} for s in scores]
        except ValueError:
            if len(records) == 1:
                raise
        out = []
        for record in records:
            try:
                (s,) = score_records(self.model, self.tokenizer, [record], batch_size=1)
                out.append({"probabilities": s.probabilities})
            except ValueError as err:
                out.append({"error": str(err)})
        return out

    @serve.batch(max_concurrent_batches=MERGED_BATCHES)
    async def generate(self, items: list[dict]) -> list[dict]:
        return await self._run_batch("generate", self._generate_groups, items)

    def _generate_groups(self, raw: list[dict]) -> list[dict]:
        from medqa.inference import DEFAULT_STOP

        items = [policy.GenerationItem(**{**r, "stop": tuple(r.get("stop", ()))}) for r in raw]
        results: list[dict] = [{} for _ in items]
        for group in policy.group_by_settings(items):
            first = items[group[0]]
            texts = self.pipeline.generate_batch(
                [items[i].question for i in group], temperature=first.temperature, max_length=first.max_length,
                length_penalty=first.length_penalty, num_beams=first.num_beams, concise=first.concise,
                stop=DEFAULT_STOP + first.stop, seed=first.seed,
            )
            for i, text in zip(group, texts):
                results[i] = {"text": text, "completion_tokens": len(self.tokenizer(text, add_special_tokens=False)["input_ids"]),
                              "prompt_tokens": len(self.tokenizer(items[i].question, add_special_tokens=False)["input_ids"])}
        return results

    def info(self) -> dict:
        import torch

        return {"model": self.name, "adapter": self.adapter, "gpu_available": self.gpu,
                "device": str(next(self.model.parameters()).device), "torch_threads": torch.get_num_threads(),
                "replica": serve.get_replica_context().replica_id.unique_id,
                "actor_name": serve.get_replica_context().replica_id.to_full_id_str()}

    def stats(self) -> dict:
        """Batch sizes this replica has run (tests and benchmarks check batching happened)."""
        return {kind: dict(t) for kind, t in self.batch_sizes.items()} | {"replica": serve.get_replica_context().replica_id.unique_id}


# ---------------------------------------------------------------- safety deployment


@serve.deployment(name="SafetyGuard")
class SafetyGuard:
    def __init__(self, validator: str = DEFAULT_VALIDATOR):
        module, _, name = validator.partition(":")
        self.adapter = policy.SafetyAdapter(getattr(importlib.import_module(module), name)())
        self.adapter.warm_up()  # the replica reports ready only once the first request would be fast

    def check_input(self, text: str, patient_context: Optional[dict] = None) -> dict:
        return self.adapter.check_input(text, patient_context)

    def check_output(self, text: str, patient_context: Optional[dict] = None) -> tuple[str, dict]:
        return self.adapter.check_output(text, patient_context)

    def ping(self) -> bool:
        return True


# ---------------------------------------------------------------- HTTP ingress

app = FastAPI(
    title="medqa",
    version="0.1.0",
    description="Medical question answering with a safety graph. Educational use only; not for clinical decisions.",
)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _request_id(request: Request) -> str:
    # Ray Serve's proxy takes X-Request-ID from the client (or makes one) and echoes it back.
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def _error(request: Request, status: int, message: str, details: Optional[list] = None) -> JSONResponse:
    body = {"error": message, "request_id": _request_id(request)}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content=body)


def _describe_validation(errors: list[dict]) -> tuple[int, str, list]:
    """FastAPI's validation errors → (status, one readable line, JSON-safe details)."""
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
               for e in errors]
    if any(e["type"] == "json_invalid" for e in details):
        return 400, "the request body is not valid JSON", details
    if any(e["type"] == "missing" and e["loc"] == ["body"] for e in details):
        return 400, "the request body is empty: a JSON object is expected", details
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body")
    return 422, f"{where}: {first['msg']}" if where else first["msg"], details


@app.exception_handler(RequestValidationError)
async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    status, message, details = _describe_validation(list(exc.errors()))
    return _error(request, status, message, details)


@app.exception_handler(StarletteHTTPException)
async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error(request, exc.status_code, str(exc.detail))


@app.exception_handler(ApiError)
async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(request, exc.status, exc.message)


@app.exception_handler(Exception)
async def _on_server_fault(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("request %s failed", _request_id(request))
    return _error(request, 500, "internal server error")


# Errors that mean "the replica went away", worth one more try on another replica.
def _replica_gone(err: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return isinstance(err, (ActorDiedError, ActorUnavailableError, RayActorError))


def _discard(task: asyncio.Future) -> None:
    """Cancel work whose result is no longer wanted, without an unretrieved-exception warning."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


@serve.deployment(name="MedQAIngress", max_ongoing_requests=256)
@serve.ingress(app)
class MedQAIngress:
    def __init__(self, model: DeploymentHandle, safety: DeploymentHandle, settings: dict):
        from ray.serve.metrics import Counter

        self.model, self.safety = model, safety
        self.max_question_chars = settings["max_question_chars"]
        self.max_new_tokens = settings["max_new_tokens"]
        self.abstain_threshold = settings["abstain_threshold"]
        self.api_key = os.environ.get(settings["api_key_env"]) or None
        self.model_name = settings["model_name"]
        self.blocked = Counter("medqa_blocked_requests", description="Requests refused by the safety graph.",
                               tag_keys=("endpoint",))
        self.emergencies = Counter("medqa_emergency_requests", description="Requests answered with the emergency notice.",
                                   tag_keys=("endpoint",))

    # ---- shared steps

    def _admit(self, request: Request, question: str, new_tokens: int = 0) -> str:
        """Auth and the configured limits; returns the request id."""
        if not policy.api_key_ok(self.api_key, request.headers.get("authorization"), request.headers.get("x-api-key")):
            raise ApiError(401, "missing or invalid API key (send `Authorization: Bearer <key>`)")
        if len(question) > self.max_question_chars:
            raise ApiError(413, f"question is longer than {self.max_question_chars} characters")
        if new_tokens > self.max_new_tokens:
            raise ApiError(422, f"max_length: at most {self.max_new_tokens} new tokens on this server")
        return _request_id(request)

    async def _call(self, handle: DeploymentHandle, method: str, *args) -> Any:
        """A handle call retried when its replica died mid-request (the router
        learns of the death a moment later and picks a live replica)."""
        for attempt in range(3):
            try:
                return await getattr(handle, method).remote(*args)
            except Exception as err:  # noqa: BLE001 - only replica deaths are retried
                if not _replica_gone(err):
                    raise
                if attempt == 2:
                    raise ApiError(503, f"the {method} backend is restarting; retry shortly") from err
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _screen(self, text: str, use_safety: bool, context: Optional[dict], endpoint: str,
                      rid: str) -> tuple[str, dict]:
        """The input check → (decision, report). Emergencies are acted on even without use_safety."""
        report = await self._call(self.safety, "check_input", text, context)
        decision = policy.decide(report)
        if decision == policy.EMERGENCY:
            self.emergencies.inc(tags={"endpoint": endpoint})
        elif not use_safety:
            return policy.ANSWER, policy.unchecked_report()
        elif decision == policy.REFUSE:
            self.blocked.inc(tags={"endpoint": endpoint})
        logger.info("request_id=%s endpoint=%s decision=%s risk=%d categories=%s", rid, endpoint, decision,
                    report["risk_level"], report["categories"])
        return decision, report

    async def _answer_text(self, question: str, controls: dict, use_safety: bool, context: Optional[dict],
                           endpoint: str, rid: str, screened: Optional[str] = None) -> dict:
        """Free-text answer through the safety graph (used by /generate and chat).
        `screened` is what the input check reads when it is more than the question
        (every turn of a chat)."""
        decision, report = await self._screen(screened or question, use_safety, context, endpoint, rid)
        if decision == policy.EMERGENCY:
            return {"response": policy.emergency_message(report), "emergency": True, "refused": False,
                    "safety_report": report, "usage": None}
        if decision == policy.REFUSE:
            return {"response": policy.refusal_message(report), "emergency": False, "refused": True,
                    "safety_report": report, "usage": None}
        out = await self._call(self.model, "generate", {"question": question, **controls})
        text = out["text"]
        withheld = False
        if use_safety:
            text, out_report = await self._call(self.safety, "check_output", text, context)
            report = policy.merge_reports(report, out_report)
            withheld = out_report["blocked"]  # e.g. a dangerous dose: the engine replaced the answer
            if withheld:
                self.blocked.inc(tags={"endpoint": endpoint})
        return {"response": text, "emergency": False, "refused": withheld, "safety_report": report, "usage": out}

    # ---- endpoints

    @app.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def health(self) -> JSONResponse:
        try:
            info = await asyncio.wait_for(self._call(self.model, "info"), timeout=10)
            await asyncio.wait_for(self._call(self.safety, "ping"), timeout=10)
        except Exception as err:  # noqa: BLE001 - any failure means unhealthy
            return JSONResponse(status_code=503, content={"status": "unhealthy", "model_loaded": False,
                                                          "gpu_available": False, "error": type(err).__name__})
        return JSONResponse({"status": "healthy", "model_loaded": True, "gpu_available": info["gpu_available"],
                             "model": info["model"], "adapter": info["adapter"], "device": info["device"],
                             "safety": "loaded", "api_key_required": self.api_key is not None,
                             "limits": {"max_new_tokens": self.max_new_tokens, "max_question_chars": self.max_question_chars}})

    @app.post("/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES)
    async def generate(self, body: GenerateRequest, request: Request) -> dict:
        start = time.perf_counter()
        rid = self._admit(request, body.question, body.max_length if "max_length" in body.model_fields_set else 0)
        controls = body.model_dump(include={"temperature", "max_length", "length_penalty", "num_beams", "concise", "seed"})
        controls["max_length"] = min(body.max_length, self.max_new_tokens)  # the default fits any server
        controls["stop"] = tuple(body.stop)
        context = body.patient_context
        out = await self._answer_text(body.question, controls, body.use_safety, context, "generate", rid)
        out.pop("usage")
        return {**out, "inference_time_ms": (time.perf_counter() - start) * 1000, "request_id": rid}

    @app.post("/v1/mcq", response_model=MCQResponse, responses=ERROR_RESPONSES)
    async def mcq(self, body: MCQRequest, request: Request) -> dict:
        start = time.perf_counter()
        rid = self._admit(request, body.question)
        context = body.patient_context
        text = policy.mcq_safety_text(body.question, body.options)
        # Score while the input is screened: scoring only reads the question, and its result
        # is used only if the screen lets the question through.
        scoring = asyncio.ensure_future(self._call(self.model, "score", {"question": body.question, "options": body.options}))
        try:
            decision, report = await self._screen(text, body.use_safety, context, "mcq", rid)
        except BaseException:
            _discard(scoring)
            raise
        elapsed = lambda: (time.perf_counter() - start) * 1000  # noqa: E731
        if decision != policy.ANSWER:
            _discard(scoring)
            message = policy.emergency_message(report) if decision == policy.EMERGENCY else policy.refusal_message(report)
            return {"abstained": True, "emergency": decision == policy.EMERGENCY, "refused": decision == policy.REFUSE,
                    "message": message, "safety_report": report, "inference_time_ms": elapsed(), "request_id": rid}
        scored = await scoring
        if "error" in scored:
            raise ApiError(422, scored["error"])
        threshold = self.abstain_threshold if body.abstain_threshold is None else body.abstain_threshold
        answer = policy.mcq_answer(scored["probabilities"], body.options, threshold)
        if body.use_safety:
            _, out_report = await self._call(self.safety, "check_output",
                                             f"{body.question}\nAnswer: {answer['answer_text']}", context)
            report = policy.merge_reports(report, out_report)
        return {**answer, "safety_report": report, "inference_time_ms": elapsed(), "request_id": rid}

    @app.post("/v1/chat/completions", responses=ERROR_RESPONSES)
    async def chat_completions(self, body: ChatCompletionRequest, request: Request) -> dict:
        start = time.perf_counter()
        messages = [m.model_dump() for m in body.messages]
        question = policy.chat_question(messages)
        rid = self._admit(request, question, body.max_tokens if "max_tokens" in body.model_fields_set else 0)
        max_tokens = min(body.max_tokens, self.max_new_tokens)  # the default fits any server
        controls = {"temperature": body.temperature, "max_length": max_tokens, "stop": tuple(body.stop_list()),
                    "seed": body.seed}
        out = await self._answer_text(question, controls, True, None, "chat", rid,
                                      screened=policy.chat_safety_text(messages))
        usage = out["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
        if out["emergency"] or out["refused"]:
            finish = "content_filter"
        else:
            finish = "length" if usage["completion_tokens"] >= max_tokens else "stop"
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model or self.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out["response"]},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "safety_report": out["safety_report"],
            "inference_time_ms": (time.perf_counter() - start) * 1000,
            "request_id": rid,
        }


# ---------------------------------------------------------------- builder


class BuildArgs(BaseModel):
    """`serve run medqa.serving.app:build_app key=value ...` arguments. Unset
    fields come from `config` (a medqa YAML with `model:` and `serving:`
    sections) and then from the ServingConfig defaults."""

    config: Optional[str] = Field(None, description="medqa config YAML (model and serving sections).")
    model: Optional[str] = Field(None, description="Preset, hub id or local path of the base model.")
    adapter: Optional[str] = None
    load_in_4bit: Optional[bool] = None
    max_batch_size: Optional[int] = None
    batch_wait_timeout_s: Optional[float] = None
    min_replicas: Optional[int] = None
    max_replicas: Optional[int] = None
    target_ongoing_requests: Optional[int] = None
    num_replicas: Optional[int] = Field(None, description="Fixed model replicas instead of autoscaling.")
    max_question_chars: Optional[int] = None
    abstain_threshold: Optional[float] = None
    api_key_env: Optional[str] = None
    model_num_cpus: Optional[float] = None
    model_num_gpus: Optional[float] = None
    max_ongoing_requests: Optional[int] = None
    max_new_tokens: Optional[int] = None
    small_num_cpus: float = Field(0.25, description="CPUs reserved by the ingress and safety replicas.")
    validator: str = Field(DEFAULT_VALIDATOR, description="`module:Class` of the safety validator (medqa.safety's by default).")


def resolve_settings(args: BuildArgs) -> tuple[ModelConfig, ServingConfig]:
    """Defaults → config file → explicit build args (validated by the config dataclasses)."""
    cfg = load_config(args.config)
    given = {k: v for k, v in args.model_dump(exclude={"config", "model", "num_replicas", "small_num_cpus", "validator"}).items()
             if v is not None}
    serving = dataclasses.replace(cfg.serving, **given)
    model = dataclasses.replace(cfg.model, name=args.model or cfg.model.name, load_in_4bit=serving.load_in_4bit)
    return model, serving


def build_app(args: BuildArgs) -> serve.Application:
    if not isinstance(args, BuildArgs):
        args = BuildArgs.model_validate(args or {})
    model_cfg, serving = resolve_settings(args)
    scaling: dict = (
        {"num_replicas": args.num_replicas} if args.num_replicas
        else {"autoscaling_config": {"min_replicas": serving.min_replicas, "max_replicas": serving.max_replicas,
                                     "target_ongoing_requests": serving.target_ongoing_requests}}
    )
    model = MedQAModel.options(
        **scaling, max_ongoing_requests=serving.max_ongoing_requests,
        ray_actor_options={"num_cpus": serving.model_num_cpus, "num_gpus": serving.model_num_gpus},
    ).bind(dataclasses.asdict(model_cfg), serving.adapter, serving.max_batch_size, serving.batch_wait_timeout_s)
    safety = SafetyGuard.options(ray_actor_options={"num_cpus": args.small_num_cpus}).bind(args.validator)
    actor_options: dict = {"num_cpus": args.small_num_cpus}
    if os.environ.get(serving.api_key_env):
        # The key is read where the app is built and handed to the ingress process only.
        actor_options["runtime_env"] = {"env_vars": {serving.api_key_env: os.environ[serving.api_key_env]}}
    settings = {"max_question_chars": serving.max_question_chars, "abstain_threshold": serving.abstain_threshold,
                "api_key_env": serving.api_key_env, "model_name": model_cfg.name, "max_new_tokens": serving.max_new_tokens}
    return MedQAIngress.options(ray_actor_options=actor_options).bind(model, safety, settings)
