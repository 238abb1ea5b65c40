"""The HTTP ingress: FastAPI endpoints that pass every answer through the safety graph.

Each request: `RequestGate` (request id, body size, API key) → schema → the
operator's limits and opt-out policy → the model it names (`catalog.py`; 404 for
an unknown one) → the input check → the model → the output check, all within
`serving.request_timeout_s` (504 past it). A busy model gets 503 with
`Retry-After` at once rather than an unbounded queue. One log line and one metric
per request record the decision (never the text).

A request for an adapter goes to the model deployment with Serve's
`multiplexed_model_id`, so Serve routes it to a replica that holds the adapter. A
streamed chat (`stream: true`) is screened before its first byte and its answer
checked a sentence at a time as it is generated (`streaming.py`).
"""

import asyncio
import logging
import time
from typing import Any, Awaitable, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from medqa.config import ServingConfig
from medqa.serving import limits, verdicts
from medqa.serving.catalog import Catalog
from medqa.serving.errors import ApiError, describe_validation, error_body
from medqa.serving.gate import GateSettings, RequestGate, read_api_key, refuse_open_server
from medqa.serving.messages import emergency_message, no_answer_message, refusal_message
from medqa.serving.schemas import (
    ChatCompletionRequest,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    MCQRequest,
    MCQResponse,
)
from medqa.serving.screening import chat_question, chat_safety_text
from medqa.serving.streaming import DONE, ChunkHeader, StreamOutcome, checked_text, chunk, sse, usage_chunk

logger = logging.getLogger("ray.serve")

ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 422, 503, 504)}

app = FastAPI(
    title="medqa",
    version="0.1.0",
    description="Medical question answering with a safety graph. Educational use only; not for clinical decisions.",
)
app.add_middleware(RequestGate)


def _rid(request: Request) -> str:
    return request.state.request_id  # set by RequestGate, validated


def _error(request: Request, status: int, message: str, details: Optional[list] = None,
           headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(message, _rid(request), details), headers=headers)


@app.exception_handler(RequestValidationError)
async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    status, message, details = describe_validation(list(exc.errors()))
    return _error(request, status, message, details)


@app.exception_handler(StarletteHTTPException)
async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error(request, exc.status_code, str(exc.detail))


@app.exception_handler(ApiError)
async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=exc.body(_rid(request)), headers=exc.headers)


@app.exception_handler(Exception)
async def _on_server_fault(request: Request, exc: Exception) -> JSONResponse:
    logger.error("request_id=%s failed: %s", _rid(request), type(exc).__name__)  # no traceback: it may quote the text
    return _error(request, 500, "internal server error")


def _replica_gone(err: BaseException) -> bool:
    """Errors that mean "the replica went away", worth one more try on another replica."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return isinstance(err, (ActorDiedError, ActorUnavailableError, RayActorError))


def _discard(task: asyncio.Future) -> None:
    """Cancel work whose result is no longer wanted, without an unretrieved-exception warning."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


# The streamed chat's helpers, above the class: `serve.ingress` pickles the class as it is
# decorated, with only the module globals that exist by then.
def _event_stream(events) -> StreamingResponse:
    # No buffering by proxies in between: each event is meant to arrive as it is sent.
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _fixed_events(head: ChunkHeader, text: str, report: dict, include_usage: bool):
    """A stream that carries one message instead of a model answer (an emergency notice, a refusal)."""
    yield sse(chunk(head, {"role": "assistant", "content": ""}))
    yield sse(chunk(head, {"content": text}))
    yield sse({**chunk(head, finish_reason="content_filter"), "safety_report": report})
    if include_usage:
        yield sse(usage_chunk(head, 0, 0))
    yield DONE


def _error_event(message: str, kind: str) -> dict:
    """An error after the stream has begun (its status line is long sent): OpenAI's error event."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@serve.deployment(name="MedQAIngress", max_ongoing_requests=1024)
@serve.ingress(app)
class MedQAIngress:
    def __init__(self, model: DeploymentHandle, safety: DeploymentHandle, serving: dict, model_name: str):
        from ray.serve.metrics import Counter

        from medqa.runtime import private

        self.model, self.safety = model, safety
        self.serving = ServingConfig(**serving)
        self.catalog = Catalog(base=model_name, adapters=tuple(self.serving.adapters), created=int(time.time()))
        api_key = read_api_key(self.serving)
        # The proxy's bind address, as the controller holds it (a Serve config's http_options).
        refuse_open_server(self.serving, private.serve_proxy_host(), api_key)
        app.state.gate = GateSettings(api_key=api_key, max_body_bytes=self.serving.max_body_bytes)
        self.decisions = Counter("medqa_requests", description="Requests by endpoint and safety decision.",
                                 tag_keys=("endpoint", "decision"))

    # ---- shared steps

    async def _within_deadline(self, work: Awaitable) -> Any:
        try:
            return await asyncio.wait_for(work, timeout=self.serving.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"no answer within {self.serving.request_timeout_s:g} s; "
                                "the work was cancelled") from None

    async def _call(self, method: DeploymentHandle, *args) -> Any:
        """A handle call: retried when its replica died mid-request (the router learns of
        the death a moment later), shed with 503 when the model's queue is full, and
        cancelled downstream when the caller's deadline passes."""
        from ray.serve.exceptions import BackPressureError

        for attempt in range(3):
            response = method.remote(*args)
            try:
                return await response
            except asyncio.CancelledError:
                response.cancel()
                raise
            except BackPressureError:
                raise self._unavailable("the server is at capacity") from None
            except Exception as err:  # noqa: BLE001 - only replica deaths are retried
                if not _replica_gone(err):
                    raise
                if attempt == 2:
                    raise self._unavailable("the backend is restarting") from err
                await asyncio.sleep(0.2 * (attempt + 1))

    def _unavailable(self, why: str) -> ApiError:
        return ApiError(503, f"{why}; retry shortly", {"Retry-After": str(self.serving.retry_after_s)})

    def _new_tokens(self, body, field: str) -> int:
        """The request's new-token budget: as asked (already checked against the server's
        cap), or the schema's default cut to the cap, so a request that asks nothing fits any server."""
        asked = getattr(body, field)
        return asked if field in body.model_fields_set else min(asked, self.serving.max_new_tokens)

    def _opt_out(self, use_safety: bool) -> bool:
        """Whether this request runs without the refusal and output checks (the operator's call)."""
        if not use_safety and not self.serving.allow_safety_opt_out:
            raise ApiError(403, "use_safety=false is not allowed on this server: the safety checks are the "
                                "operator's decision (serving.allow_safety_opt_out)")
        return not use_safety

    def _record(self, request: Request, endpoint: str, decision: str, report: dict) -> None:
        """One log line and one metric per answered request: the decision, never the text."""
        self.decisions.inc(tags={"endpoint": endpoint, "decision": decision})
        logger.info("request_id=%s endpoint=%s decision=%s risk=%d categories=%s", _rid(request), endpoint, decision,
                    report["risk_level"], ",".join(report["categories"]) or "-")

    @staticmethod
    def _decide(report: dict, opted_out: bool) -> tuple[str, dict]:
        """The input check's report → (decision, report). Emergencies and crises are acted on
        even when the operator lets a caller opt out; anything else then goes unchecked."""
        decision = verdicts.decide(report)
        if opted_out and decision != verdicts.EMERGENCY:
            return verdicts.UNCHECKED, verdicts.merge_reports(report, verdicts.unchecked_report())
        return decision, report

    async def _screen(self, text: str, opted_out: bool, context: Optional[dict]) -> tuple[str, dict]:
        """The input check → (decision, report)."""
        return self._decide(await self._call(self.safety.check_input, text, context), opted_out)

    def _model(self, adapter: Optional[str]) -> DeploymentHandle:
        """The model deployment, routed by Serve to a replica holding `adapter` when one is named."""
        return self.model if adapter is None else self.model.options(multiplexed_model_id=adapter)

    async def _answer_text(self, request: Request, endpoint: str, item: dict, adapter: Optional[str],
                           opted_out: bool, context: Optional[dict], screened: str) -> dict:
        """Free-text answer through the safety graph (/generate and chat). `screened` is what
        the input check reads (the question, or every turn of a chat)."""
        decision, report = await self._screen(screened, opted_out, context)
        reply = {"emergency": decision == verdicts.EMERGENCY, "refused": decision == verdicts.REFUSE,
                 "safety_report": report, "usage": None, "model": self.catalog.model_id(adapter)}
        if decision == verdicts.EMERGENCY:
            reply["response"] = emergency_message(report)
        elif decision == verdicts.REFUSE:
            reply["response"] = refusal_message(report)
        else:
            out = await self._call(self._model(adapter).generate, item)
            if "error" in out:
                raise ApiError(out["status"], out["error"])
            reply.update(response=out["text"], usage=out)
            if not opted_out:
                reply["response"], out_report = await self._call(self.safety.check_output, out["text"], context)
                reply["safety_report"] = verdicts.merge_reports(report, out_report)
                if out_report["blocked"]:  # e.g. a dangerous dose: the engine replaced the answer
                    decision, reply["refused"] = verdicts.WITHHELD, True
        self._record(request, endpoint, decision, reply["safety_report"])
        return reply

    def _health_details(self, info: dict) -> dict:
        s = self.serving
        return {"model_loaded": True, "gpu_available": info["gpu_available"], "model": info["model"],
                "adapter": info["adapter"], "device": info["device"], "safety": "loaded",
                "calibration": info.get("calibration"),
                "api_key_required": app.state.gate.api_key is not None,
                "limits": {"max_new_tokens": s.max_new_tokens, "max_question_chars": s.max_question_chars,
                           "max_option_chars": s.max_option_chars, "max_body_bytes": s.max_body_bytes,
                           "request_timeout_s": s.request_timeout_s},
                "safety_opt_out_allowed": s.allow_safety_opt_out}

    # ---- endpoints

    @app.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def health(self, request: Request) -> JSONResponse:
        """`{"status"}` to anyone; the details only with the key (when one is set)."""
        try:
            info = await asyncio.wait_for(self._call(self.model.info), timeout=10)
            await asyncio.wait_for(self._call(self.safety.ping), timeout=10)
        except Exception:  # noqa: BLE001 - any failure means unhealthy
            return JSONResponse(status_code=503, content={"status": "unhealthy"})
        body = {"status": "healthy"}
        if request.state.authenticated:
            body |= self._health_details(info)
        return JSONResponse(body)

    @app.get("/v1/models")
    async def models(self) -> dict:
        """OpenAI's model list: the base model and one `<base>:<name>` per adapter."""
        return self.catalog.listing()

    @app.get("/v1/models/{model_id:path}", responses=ERROR_RESPONSES)
    async def model_card(self, model_id: str) -> dict:
        return self.catalog.card(model_id)

    @app.post("/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES)
    async def generate(self, body: GenerateRequest, request: Request) -> dict:
        return await self._within_deadline(self._generate(body, request))

    async def _generate(self, body: GenerateRequest, request: Request) -> dict:
        start = time.perf_counter()
        limits.check_text(self.serving, body.question)
        controls = body.model_dump(include={"question", "temperature", "length_penalty", "num_beams", "concise",
                                            "seed"})
        controls["max_length"] = self._new_tokens(body, "max_length")
        controls["stop"] = tuple(body.stop)
        limits.check_generation(self.serving, controls["max_length"], body.stop, "max_length")
        opted_out = self._opt_out(body.use_safety)
        adapter = self.catalog.adapter_for(body.model)
        out = await self._answer_text(request, "generate", controls, adapter, opted_out, body.patient_context,
                                      body.question)
        out.pop("usage")
        return {**out, "inference_time_ms": (time.perf_counter() - start) * 1000, "request_id": _rid(request)}

    @app.post("/v1/mcq", response_model=MCQResponse, responses=ERROR_RESPONSES)
    async def mcq(self, body: MCQRequest, request: Request) -> dict:
        return await self._within_deadline(self._mcq(body, request))

    async def _mcq(self, body: MCQRequest, request: Request) -> dict:
        start = time.perf_counter()
        limits.check_text(self.serving, body.question)
        limits.check_options(self.serving, body.options)
        opted_out = self._opt_out(body.use_safety)
        adapter = self.catalog.adapter_for(body.model)
        context = body.patient_context
        # Score while the safety graph checks the request and every option's answer in one call:
        # the score is used only if the request may be answered, and only its option's check.
        scoring = asyncio.ensure_future(self._call(self._model(adapter).score, {
            "question": body.question, "options": body.options, "subject": body.subject}))
        try:
            report, answer_reports = await self._call(self.safety.check_mcq, body.question, body.options, context)
            decision, report = self._decide(report, opted_out)
            if decision in (verdicts.ANSWER, verdicts.UNCHECKED):
                scored = await scoring
        finally:
            if not scoring.done():
                _discard(scoring)
        elapsed = lambda: (time.perf_counter() - start) * 1000  # noqa: E731
        if decision in (verdicts.ANSWER, verdicts.UNCHECKED):
            if "error" in scored:
                raise ApiError(scored["status"], scored["error"])
            threshold = self.serving.abstain_threshold if body.abstain_threshold is None else body.abstain_threshold
            answer = verdicts.mcq_answer(scored["probabilities"], body.options, threshold,
                                         scored.get("prediction_set"), scored.get("set_coverage"))
            if not opted_out:
                out_report = answer_reports[answer["answer_index"]]
                report = verdicts.merge_reports(report, out_report)
                if out_report["blocked"]:
                    decision = verdicts.WITHHELD
        if decision in (verdicts.ANSWER, verdicts.UNCHECKED):
            reply = {**answer, "safety_report": report}
        else:  # no answer fields at all: the probabilities (or the answer set) would give the withheld answer away
            reply = {"abstained": True, "emergency": decision == verdicts.EMERGENCY,
                     "refused": decision != verdicts.EMERGENCY, "message": no_answer_message(decision, report),
                     "safety_report": report}
        self._record(request, "mcq", decision, report)
        return {**reply, "model": self.catalog.model_id(adapter), "inference_time_ms": elapsed(),
                "request_id": _rid(request)}

    @app.post("/v1/chat/completions", responses=ERROR_RESPONSES)
    async def chat_completions(self, body: ChatCompletionRequest, request: Request) -> Any:
        return await self._within_deadline(self._chat(body, request))

    async def _chat(self, body: ChatCompletionRequest, request: Request) -> Any:
        messages = [m.model_dump() for m in body.messages]
        limits.check_messages(self.serving, messages)
        max_tokens = self._new_tokens(body, "max_tokens")
        limits.check_generation(self.serving, max_tokens, body.stop_list(), "max_tokens")
        adapter = self.catalog.adapter_for(body.model)
        # The whole conversation goes to the model, which formats it with its chat template.
        item = {"question": chat_question(messages), "messages": [(m["role"], m["content"]) for m in messages],
                "temperature": body.temperature, "max_length": max_tokens, "stop": tuple(body.stop_list()),
                "seed": body.seed}
        head = ChunkHeader(f"chatcmpl-{_rid(request)}", int(time.time()), self.catalog.model_id(adapter))
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return await self._chat_stream(request, head, item, adapter, chat_safety_text(messages), usage)
        start = time.perf_counter()
        out = await self._answer_text(request, "chat", item, adapter, False, None, chat_safety_text(messages))
        usage = out["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
        if out["emergency"] or out["refused"]:
            finish = "content_filter"
        else:
            finish = usage.get("finish_reason") or ("length" if usage["completion_tokens"] >= max_tokens else "stop")
        return {
            "id": head.id,
            "object": "chat.completion",
            "created": head.created,
            "model": head.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out["response"]},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "safety_report": out["safety_report"],
            "inference_time_ms": (time.perf_counter() - start) * 1000,
            "request_id": _rid(request),
        }

    # ---- streamed chat

    async def _chat_stream(self, request: Request, head: ChunkHeader, item: dict, adapter: Optional[str],
                           screened: str, include_usage: bool) -> StreamingResponse:
        """Screened before the first byte; a request that gets no model answer (emergency,
        refusal) streams its notice as the first content. Errors before the model's first
        token are JSON errors (503, 413, ...); after it, an error event ends the stream."""
        decision, report = await self._screen(screened, False, None)
        if decision != verdicts.ANSWER:
            self._record(request, "chat", decision, report)
            text = emergency_message(report) if decision == verdicts.EMERGENCY else refusal_message(report)
            return _event_stream(_fixed_events(head, text, report, include_usage))
        stream = self._model(adapter).options(stream=True).generate_stream.remote(item)
        first = await self._first_event(stream)
        return _event_stream(self._answer_events(request, head, stream, first, report, include_usage))

    async def _first_event(self, stream) -> dict:
        """The model stream's first event: 503 when the model is at capacity or gone, its own
        4xx (a prompt too long for the context) as a JSON error."""
        from ray.serve.exceptions import BackPressureError

        try:
            event = await stream.__anext__()
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except BackPressureError:
            raise self._unavailable("the server is at capacity") from None
        except Exception as err:  # noqa: BLE001 - only replica deaths become a 503
            if not _replica_gone(err):
                raise
            raise self._unavailable("the backend is restarting") from err
        if "error" in event:
            stream.cancel()
            raise ApiError(event["status"], event["error"])
        return event

    async def _answer_events(self, request: Request, head: ChunkHeader, stream, first: dict, report: dict,
                             include_usage: bool):
        """The answer's server-sent events, every sentence checked before it is sent."""
        ends: dict = {}
        deadline = time.monotonic() + self.serving.request_timeout_s

        async def pieces():
            event = first
            while "done" not in event:
                if "error" in event:
                    raise ApiError(event["status"], event["error"])
                yield event["text"]
                try:  # the deadline is checked here, not around the yields (they suspend in Starlette's send)
                    event = await asyncio.wait_for(stream.__anext__(), max(deadline - time.monotonic(), 0.001))
                except StopAsyncIteration:
                    return
            ends.update(event)

        outcome = StreamOutcome()
        check = lambda text: self._call(self.safety.check_output, text, None)  # noqa: E731
        try:
            yield sse(chunk(head, {"role": "assistant", "content": ""}))
            async for text in checked_text(pieces(), check, outcome):
                yield sse(chunk(head, {"content": text}))
            merged = verdicts.merge_reports(report, outcome.report) if outcome.report else report
            finish = "content_filter" if outcome.withheld else ends.get("finish_reason", "stop")
            yield sse({**chunk(head, finish_reason=finish), "safety_report": merged})
            if include_usage:
                yield sse(usage_chunk(head, ends.get("prompt_tokens", 0), ends.get("completion_tokens", 0)))
            yield DONE
            self._record(request, "chat", verdicts.WITHHELD if outcome.withheld else verdicts.ANSWER, merged)
        except TimeoutError:
            yield sse(_error_event(f"no answer within {self.serving.request_timeout_s:g} s; the work was cancelled",
                                   "timeout"))
        except ApiError as err:
            yield sse(_error_event(err.message, "server_error"))
        except Exception as err:  # noqa: BLE001 - a replica lost mid-answer: say so, never a cut-off stream
            logger.error("request_id=%s stream failed: %s", _rid(request), type(err).__name__)
            yield sse(_error_event("the model stopped answering; retry", "server_error"))
        finally:
            stream.cancel()  # a client that left, or an answer cut short: the model stops generating

