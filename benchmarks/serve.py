"""Serving benchmark: latency percentiles and throughput of the Serve app with SmolLM2.

    .venv/bin/python benchmarks/serve.py [--quick] [--output runs/bench/serve.json]

Measures, in one run on this machine:
  1. /v1/mcq and /generate at concurrency 1, 8 and 32 (p50/p95/p99 latency, requests/s);
  2. /v1/mcq through Serve with the safety graph against a direct in-process call of the
     same scorer on the same questions (concurrency 1; the p50 overhead);
  3. @serve.batch on (max_batch_size 16) against off (max_batch_size 1) at concurrency 16,
     next to what batching gains in-process (the same questions scored in batches of 16
     against one by one: the ceiling for any server on this machine);
  4. overload: 64 clients sending /generate for 60 s to one replica with the shipped
     limits (status counts, p50/p99 of the answered, the longest wait of any client);
  5. the serving stack's own overhead, with the tiny model so compute is negligible:
     /v1/mcq at concurrency 1 against the same work in-process (the safety call the
     server makes -- the request check and every option's answer check -- then the
     scorer), the learned classifier's cost apart, and Ray Serve's own floor: a no-op
     app of the same shape (proxy, ingress, two handle calls side by side). Run it
     again with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 to measure Ray's direct-ingress mode;
  6. streaming: /v1/chat/completions streamed against the same requests not streamed, at
     concurrency 1 and 8: time to the first token (the first event after the role chunk
     is sent only once the model's first token is there: that chunk's arrival), time to
     the first content (the first sentence that passed the output check), total time
     and completion tokens/s per request;
  7. adapters: /v1/mcq p50 at concurrency 1 for the base against `model: <base>:a` (a
     LoRA already loaded), interleaved rounds; and a cold adapter's load (two adapters,
     one slot per replica, so each request for the other one loads it).

    .venv/bin/python benchmarks/serve.py --only overload     # or overhead, latency, streaming, adapters
Questions are real MedMCQA dev rows read from ../shared/data at run time (not copied).
Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import requests

# benchmarks/ is not a package: the shared load helpers are a sibling module. Run as a script,
# this folder is sys.path[0] already; imported by path from elsewhere it is not, so add it (at
# the end, so that a benchmark's file name never shadows an installed module).
sys.path.append(str(Path(__file__).resolve().parent))

from load import fire, flood, percentile  # serve_breakdown.py imports percentile from here

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "medmcqa_dev_public.jsonl"
GEN_TOKENS = 32
MODEL_CPUS = 2  # torch in a Ray actor uses num_cpus threads: give the replica both cores, like the direct call


def load_questions(n: int) -> list[dict]:
    rows = [json.loads(line) for line in DEV.open()][:n]
    return [{"question": r["question"], "options": [r["opa"], r["opb"], r["opc"], r["opd"]]} for r in rows]


def summarise(latencies_ms: list[float], wall_s: float, errors: int) -> dict:
    return {"n": len(latencies_ms), "errors": errors, "p50_ms": round(percentile(latencies_ms, 50), 1),
            "p95_ms": round(percentile(latencies_ms, 95), 1), "p99_ms": round(percentile(latencies_ms, 99), 1),
            "throughput_rps": round(len(latencies_ms) / wall_s, 2)}


def overload(url: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    """`clients` threads, each sending bodies back to back for `seconds`: what a flood sees."""
    from collections import Counter

    log = flood(url, bodies, clients, seconds, timeout=600)
    answered = [shot.ms for shot in log if shot.status == 200]
    return {"clients": clients, "seconds": seconds, "requests": len(log),
            "status_counts": dict(Counter(str(shot.status) for shot in log)),
            "answered_p50_ms": round(percentile(answered, 50), 1) if answered else None,
            "answered_p99_ms": round(percentile(answered, 99), 1) if answered else None,
            "longest_wait_ms": round(max(shot.ms for shot in log), 1)}


def in_process_work(questions: list[dict], use_classifier: bool) -> list[float]:
    """The work behind one /v1/mcq, in this process, one step after the other: the safety call
    the server makes (the request check and every option's answer check), then the tiny-model
    score, on one torch thread as in each replica of the served run."""
    import torch

    from medqa.config import ModelConfig
    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.scoring import score_records
    from medqa.safety import MedicalSafetyValidator
    from medqa.serving.screening import SafetyAdapter

    torch.set_num_threads(1)
    cfg = ModelConfig(name="tiny-random", load_in_4bit=False)
    model, tok = load_model(cfg).eval(), load_tokenizer(cfg)
    guard = SafetyAdapter(MedicalSafetyValidator(use_classifier=use_classifier))
    guard.warm_up()

    def one(q: dict) -> None:
        guard.check_mcq(q["question"], q["options"])
        score_records(model, tok, [MCQRecord(**q)], batch_size=1)

    one(questions[0])
    return timed(one, questions)


def timed(fn, items) -> list[float]:
    """Milliseconds of `fn(item)` for each item, one after the other."""
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def load_test(url: str, bodies: list[dict], concurrency: int) -> dict:
    """Send every body once with `concurrency` client threads; latency is client-side."""
    start = time.perf_counter()
    shots = fire(url, bodies, concurrency, timeout=600)
    wall = time.perf_counter() - start
    return summarise([shot.ms for shot in shots], wall, sum(shot.status != 200 for shot in shots))


def serve_floor(base: str, questions: list[dict]) -> dict:
    """Ray Serve's own cost on this machine: an app of /v1/mcq's shape (proxy, FastAPI ingress,
    two handle calls awaited side by side) whose deployments do nothing."""
    import asyncio

    from fastapi import FastAPI
    from ray import serve

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    class Echo:
        def __call__(self, body: dict) -> dict:
            return body

    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    @serve.ingress(api)
    class Front:
        def __init__(self, left, right):
            self.left, self.right = left, right

        @api.post("/v1/mcq")
        async def mcq(self, body: dict) -> dict:
            left, _ = await asyncio.gather(self.left.remote(body), self.right.remote(body))
            return left

    serve.run(Front.bind(Echo.bind(), Echo.options(name="Echo2").bind()), name="floor", route_prefix="/floor")
    load_test(base + "/floor/v1/mcq", questions[:4], 1)
    floor = load_test(base + "/floor/v1/mcq", questions, 1)
    serve.delete("floor")
    return floor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(base: str, name: str, batch_wait: float, **args) -> str:
    from ray import serve

    from medqa.serving.app import BuildArgs, build_app

    build = BuildArgs(**{"model": "smollm2-135m", "num_replicas": 1, "model_num_cpus": MODEL_CPUS,
                         "small_num_cpus": 0.25, "batch_wait_timeout_s": batch_wait, "max_ongoing_requests": 64,
                         **args})
    prefix = "/" if name == "medqa" else f"/{name}"
    serve.run(build_app(build), name=name, route_prefix=prefix, blocking=False)
    url = base + ("" if name == "medqa" else prefix)
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=10).status_code == 200:
                return url
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{name} did not become healthy")


def batch_sizes(app: str) -> dict:
    """How many batches of each size the model replica has run so far (was batching real?)."""
    from ray import serve

    return serve.get_deployment_handle("MedQAModel", app_name=app).stats.remote().result()


def direct_mcq(questions: list[dict], batched: list[dict], batch_size: int) -> tuple[dict, dict]:
    """The same scorer called in this process: one question at a time (the overhead baseline),
    then `batched` one by one against batches of `batch_size` (what batching can gain at best)."""
    import torch

    from medqa.config import ModelConfig
    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.scoring import score_records

    torch.set_num_threads(MODEL_CPUS)
    cfg = ModelConfig(name="smollm2-135m", load_in_4bit=False)
    model, tok = load_model(cfg), load_tokenizer(cfg)
    model.eval()
    score_records(model, tok, [MCQRecord(**questions[0])], batch_size=1)  # warm-up
    latencies, start = [], time.perf_counter()
    for q in questions:
        t = time.perf_counter()
        score_records(model, tok, [MCQRecord(**q)], batch_size=1)
        latencies.append((time.perf_counter() - t) * 1000)
    single = summarise(latencies, time.perf_counter() - start, 0)
    records = [MCQRecord(**q) for q in batched]
    seconds = {}
    for size in (1, batch_size):
        t = time.perf_counter()
        score_records(model, tok, records, batch_size=size)
        seconds[size] = time.perf_counter() - t
    ceiling = {"questions": len(records), "batch_size": batch_size, "seconds_bs1": round(seconds[1], 2),
               f"seconds_bs{batch_size}": round(seconds[batch_size], 2),
               "speedup": round(seconds[1] / seconds[batch_size], 2)}
    return single, ceiling


def latency_runs(base: str, questions: list[dict], scale: float, batch_wait: float, record, results: dict) -> None:
    """Parts 1-3: latency by concurrency, overhead against the direct call, batching on and off."""
    from ray import serve

    n_for = {1: int(24 * scale) or 4, 8: int(64 * scale) or 8, 16: int(96 * scale) or 16, 32: int(128 * scale) or 32}
    gen_n_for = {1: int(8 * scale) or 2, 8: int(32 * scale) or 8, 32: int(64 * scale) or 32}
    url = deploy(base, "medqa", batch_wait, max_batch_size=16)
    load_test(url + "/v1/mcq", questions[:4], 1)  # warm-up
    load_test(url + "/generate", [{"question": "warm up", "max_length": 4}], 1)
    record("mcq_c1", load_test(url + "/v1/mcq", questions[: n_for[1]], 1))
    record("overhead_p50_mcq_c1", round(results["mcq_c1"]["p50_ms"] / results["direct_mcq_c1"]["p50_ms"] - 1, 3))
    record("batch_on_mcq_c16", load_test(url + "/v1/mcq", questions[: n_for[16]], 16))
    record("batch_sizes_after_c16", batch_sizes("medqa"))
    serve.delete("medqa")
    url_off = deploy(base, "nobatch", batch_wait, max_batch_size=1)
    load_test(url_off + "/v1/mcq", questions[:4], 1)
    record("batch_off_mcq_c16", load_test(url_off + "/v1/mcq", questions[: n_for[16]], 16))
    record("batch_speedup_c16", round(results["batch_on_mcq_c16"]["throughput_rps"]
                                      / results["batch_off_mcq_c16"]["throughput_rps"], 2))
    serve.delete("nobatch")
    url = deploy(base, "medqa", batch_wait, max_batch_size=16)
    load_test(url + "/v1/mcq", questions[:4], 1)
    for c in (8, 32):
        record(f"mcq_c{c}", load_test(url + "/v1/mcq", questions[: n_for[c]], c))
    for c in (1, 8, 32):
        bodies = [{"question": q["question"], "temperature": 0, "max_length": GEN_TOKENS}
                  for q in questions[: gen_n_for[c]]]
        record(f"generate_c{c}", load_test(url + "/generate", bodies, c))
    serve.delete("medqa")


PARTS = ("latency", "overload", "overhead", "streaming", "adapters")


def chat_once(session: requests.Session, url: str, body: dict) -> dict:
    """One chat request, streamed or not, timed on the client: ms to the first token, to the
    first content, to the end, and the completion tokens (usage)."""
    started = time.perf_counter()
    ms = lambda: (time.perf_counter() - started) * 1000  # noqa: E731
    if not body.get("stream"):
        r = session.post(url, json=body, timeout=600)
        total = ms()
        tokens = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
        return {"status": r.status_code, "first_token_ms": total, "first_content_ms": total, "total_ms": total,
                "tokens": tokens}
    first_token = first_content = None
    tokens = 0
    with session.post(url, json={**body, "stream_options": {"include_usage": True}}, stream=True, timeout=600) as r:
        for line in r.iter_lines(decode_unicode=True):
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            first_token = first_token or ms()  # the role chunk: sent once the first token exists
            if event.get("choices") and event["choices"][0]["delta"].get("content"):
                first_content = first_content or ms()
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
        return {"status": r.status_code, "first_token_ms": first_token, "first_content_ms": first_content,
                "total_ms": ms(), "tokens": tokens}


def chat_load(url: str, bodies: list[dict], concurrency: int) -> dict:
    """Every body once, `concurrency` client threads; medians of the per-request timings."""
    import concurrent.futures as cf
    import statistics
    import threading

    sessions: dict = {}

    def one(body):
        return chat_once(sessions.setdefault(threading.get_ident(), requests.Session()), url, body)

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        shots = list(pool.map(one, bodies))
    wall = time.perf_counter() - start
    ok = [s for s in shots if s["status"] == 200 and s["first_content_ms"]]
    med = lambda key: round(statistics.median(s[key] for s in ok), 1) if ok else None  # noqa: E731
    return {"n": len(shots), "errors": len(shots) - len(ok), "first_token_p50_ms": med("first_token_ms"),
            "first_content_p50_ms": med("first_content_ms"), "total_p50_ms": med("total_ms"),
            "tokens_per_s_per_request_p50": round(statistics.median(
                s["tokens"] / (s["total_ms"] / 1000) for s in ok), 2) if ok else None,
            "tokens_per_s_total": round(sum(s["tokens"] for s in ok) / wall, 2)}


def streaming_runs(base: str, questions: list[dict], scale: float, batch_wait: float, record) -> None:
    """Part 6: the same chats streamed and not, at concurrency 1 and 8."""
    from ray import serve

    url = deploy(base, "stream", batch_wait, max_batch_size=8) + "/v1/chat/completions"
    chat_load(url, [{"messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4}], 1)
    for c, n in ((1, int(8 * scale) or 2), (8, int(24 * scale) or 8)):
        bodies = [{"messages": [{"role": "user", "content": q["question"]}], "temperature": 0,
                   "max_tokens": GEN_TOKENS * 2} for q in questions[:n]]
        record(f"chat_plain_c{c}", chat_load(url, bodies, c))
        record(f"chat_stream_c{c}", chat_load(url, [{**b, "stream": True} for b in bodies], c))
    serve.delete("stream")


def random_adapter(out_dir: str, seed: int) -> str:
    """A LoRA of the usual shape (r 8 on q/v) with random weights: what it costs, not what it knows."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from medqa.modeling.loading import resolve_checkpoint

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(resolve_checkpoint("smollm2-135m"))
    get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
                   ).save_pretrained(out_dir)
    return out_dir


def adapter_runs(base: str, questions: list[dict], scale: float, batch_wait: float, record) -> None:
    """Part 7: a per-request adapter against the base (interleaved rounds), and a cold load."""
    import statistics
    import tempfile

    from ray import serve

    with tempfile.TemporaryDirectory() as tmp:
        adapters = {"a": random_adapter(f"{tmp}/a", 0), "b": random_adapter(f"{tmp}/b", 1)}
        url = deploy(base, "lora", batch_wait, max_batch_size=8, adapters=adapters, max_adapters_per_replica=1)
        mcq = url + "/v1/mcq"
        n = int(12 * scale) or 4
        warm = [{**q, "model": "smollm2-135m:a"} for q in questions[:n]]
        load_test(mcq, questions[:4] + warm[:4], 1)  # warm-up, and adapter a loaded
        rounds = {"base": [], "adapter": []}
        for _ in range(3):  # interleaved: both see the same machine load
            rounds["base"] += [s.ms for s in fire(mcq, questions[:n], 1, timeout=600)]
            rounds["adapter"] += [s.ms for s in fire(mcq, warm, 1, timeout=600)]
        p50 = {k: round(percentile(v, 50), 1) for k, v in rounds.items()}
        record("adapter_mcq_c1", {"base_p50_ms": p50["base"], "adapter_p50_ms": p50["adapter"],
                                  "ratio": round(p50["adapter"] / p50["base"], 3), "n_each": len(rounds["base"])})
        cold = [s.ms for i in range(6) for s in fire(mcq, [{**questions[i], "model": f"smollm2-135m:{'ba'[i % 2]}"}],
                                                     1, timeout=600)]
        record("adapter_cold_load", {"cold_request_p50_ms": round(statistics.median(cold), 1),
                                     "load_ms_estimate": round(statistics.median(cold) - p50["adapter"], 1),
                                     "n": len(cold)})
        serve.delete("lora")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer requests (a smoke run).")
    parser.add_argument("--output", default="runs/bench/serve.json")
    parser.add_argument("--batch-wait", type=float, default=0.02, help="`@serve.batch` wait (seconds).")
    parser.add_argument("--only", choices=("all",) + PARTS, default="all")
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    scale = 0.25 if opts.quick else 1.0
    questions = load_questions(256)

    import ray
    from ray import serve

    out = Path(opts.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(out.read_text()) if out.exists() and opts.only != "all" else {}
    results.update({"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}, "model": "smollm2-135m",
                    "command": " ".join(["benchmarks/serve.py", *sys.argv[1:]])})

    def record(key: str, value) -> None:
        # Written after every measurement: a long run on a busy machine still leaves its figures.
        results[key] = value
        print(key, value, file=sys.stderr, flush=True)
        out.write_text(json.dumps(results, indent=2))

    parts = PARTS if opts.only == "all" else (opts.only,)
    if "overhead" in parts:  # before Ray starts: the in-process baselines get the machine to themselves
        n = int(40 * scale) or 10
        record("in_process_mcq_rules_c1",
               summarise(timed := in_process_work(questions[:n], False), sum(timed) / 1000, 0))
        record("in_process_mcq_with_classifier_c1",
               summarise(timed := in_process_work(questions[:n], True), sum(timed) / 1000, 0))
    if "latency" in parts:
        single, ceiling = direct_mcq(questions[: int(24 * scale) or 4], questions[: int(96 * scale) or 16], 16)
        record("direct_mcq_c1", single)
        record("direct_batching_ceiling", ceiling)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    base = f"http://127.0.0.1:{port}"
    try:
        if "latency" in parts:
            latency_runs(base, questions, scale, opts.batch_wait, record, results)
        if "overload" in parts:
            bodies = [{"question": q["question"], "temperature": 0, "max_length": 120} for q in questions]
            # The shipped limits (32 in the replica, 64 queued: room for all 64 clients, so they wait
            # up to the 60 s timeout), then a queue sized to what the replica clears in a timeout.
            for name, limits in (("shipped", {"max_ongoing_requests": 32, "max_queued_requests": 64}),
                                 ("tight_queue", {"max_ongoing_requests": 8, "max_queued_requests": 8})):
                url = deploy(base, "flood", opts.batch_wait, max_batch_size=8, **limits)
                load_test(url + "/generate", [{"question": "warm up", "max_length": 4}], 1)
                record(f"overload_{name}", {**limits, **overload(url + "/generate", bodies, 64, 60 * scale)})
                record(f"overload_{name}_health_after", requests.get(url + "/health", timeout=30).status_code)
                serve.delete("flood")
        if "overhead" in parts:
            n = int(40 * scale) or 10
            mode = "_throughput_optimized" if os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1" else ""
            record(f"serve_floor_c1{mode}", serve_floor(base, questions[:n]))
            # One torch thread for the tiny model, one for the safety replica: the two run side by
            # side on this machine's two cores, where two model threads would contend with safety's.
            url = deploy(base, "tiny", 0.0, model="tiny-random", max_batch_size=1, model_num_cpus=1)
            load_test(url + "/v1/mcq", questions[:4], 1)
            record(f"tiny_http_mcq_c1{mode}", load_test(url + "/v1/mcq", questions[:n], 1))
            record(f"stack_overhead_p50_ms{mode}", round(results[f"tiny_http_mcq_c1{mode}"]["p50_ms"]
                                                         - results["in_process_mcq_with_classifier_c1"]["p50_ms"], 1))
            record("classifier_cost_p50_ms", round(results["in_process_mcq_with_classifier_c1"]["p50_ms"]
                                                   - results["in_process_mcq_rules_c1"]["p50_ms"], 1))
            serve.delete("tiny")
        if "streaming" in parts:
            streaming_runs(base, questions, scale, opts.batch_wait, record)
        if "adapters" in parts:
            adapter_runs(base, questions, scale, opts.batch_wait, record)
    finally:
        serve.shutdown()
        ray.shutdown()
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
