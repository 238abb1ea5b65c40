"""GPU smoke run: every distributed path once, on one node, in minutes, with figures at the end.

    # a node with 1-8 GPUs and the package installed (budget: 10 minutes; not yet run on a GPU):
    timeout 900 .venv/bin/python benchmarks/gpu_smoke.py
    # the same stages on a CPU machine (gloo, no 4-bit, 2 workers, fewer steps; SmolLM2 took
    # 592 s on a shared 2-core machine, the tiny model about 150 s):
    timeout 900 .venv/bin/python benchmarks/gpu_smoke.py --cpu
    # attach to a running one-node Ray instead of starting one (the runs folder and the
    # API key file are local paths, so every replica must be on this node):
    .venv/bin/python benchmarks/gpu_smoke.py --address auto

Stages, each through the project's own entry points:
  1. QLoRA with DDP: `medqa.training.driver.run_training`, one worker per GPU (4-bit NF4 base).
  2. The same with DeepSpeed ZeRO-3 (4-bit weights stored in the compute dtype), where a
     worker fails once after a mid-run checkpoint and the run resumes from it.
  3. Evaluation of the DDP adapter on the held-out validation split, scored by 2 Ray Data
     actors (`medqa.evaluation.distributed.ray_scorer`, as `medqa evaluate --workers 2`) and
     reported by the evaluation core (`build_report`).
  4. `serve_configs/gpu.yaml` deployed as `medqa serve --config` deploys it (`command.plan`, then
     Serve's declarative deploy), with SmolLM2 instead of Phi-2 + adapter, a throwaway API key
     file, under its own app name and route prefix; 50 `/v1/mcq` requests over HTTP on 127.0.0.1.

The last stdout line is ONE JSON object of figures. A stage that fails is recorded under
`errors` and the run goes on (exit status 1), so one broken path does not hide the others.
Nothing is fetched from the network: the models are the embedded presets and the questions
are real MedMCQA dev rows read from ../shared/data at run time (not copied into the repo).
Not run in CI; tests/test_gpu_smoke.py runs it with --cpu and the tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Optional

# benchmarks/ is not a package: the shared load helpers are a sibling module. Run as a script,
# this folder is sys.path[0] already; imported by path (tests/test_gpu_smoke.py) it is not, so
# add it (at the end, so that a benchmark's file name never shadows an installed module).
sys.path.append(str(Path(__file__).resolve().parent))

from load import fire, percentile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "medmcqa_dev_public.jsonl"
SERVE_CONFIG = REPO / "serve_configs" / "gpu.yaml"
APP = "gpu-smoke"  # its own Serve app and route prefix: it can share a Serve instance with others
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
               "TOKENIZERS_PARALLELISM": "false"}
BATCH_SIZE = 4
EVAL_WORKERS = 2
CONCURRENCY = 8  # client threads for the serve stage: enough for @serve.batch to merge requests
VERSIONED = ("torch", "ray", "transformers", "peft", "deepspeed", "bitsandbytes")
# (GPU, --cpu) defaults: the CPU run is the same code with less work.
DEFAULTS = {"steps": (10, 4), "eval_limit": (256, 32), "max_length": (512, 192)}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="CPU only: gloo, no 4-bit, 2 workers, fewer steps")
    p.add_argument("--model", default="smollm2-135m", help="preset, hub id or path (tests use tiny-random)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="MedMCQA-schema file (default: %(default)s)")
    p.add_argument("--address", default=None, help="Ray to attach to (default: $RAY_ADDRESS, else a new local Ray)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per strategy (default: 10, --cpu 4)")
    p.add_argument("--eval-limit", type=int, default=None, help="validation questions scored (default: 256, --cpu 32)")
    p.add_argument("--max-length", type=int, default=None, help="training tokens per example (default: 512, --cpu 192)")
    p.add_argument("--requests", type=int, default=50, help="/v1/mcq requests (default: %(default)s)")
    p.add_argument("--workdir", default=None, help="prepared data and runs (default: a new temporary folder)")
    args = p.parse_args(argv)
    for key, (gpu, cpu) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, cpu if args.cpu else gpu)
    return args


# ---------------------------------------------------------------- pure helpers


def train_overrides(args, strategy: str, workers: int, workdir: Path) -> list[str]:
    """Dotted overrides for one short run of `strategy` ("ddp" or "zero3") on `workers` workers."""
    values = {
        "model.name": args.model,
        "model.load_in_4bit": not args.cpu,  # QLoRA on GPUs; --cpu trains LoRA on the full-precision base
        "model.compute_dtype": "auto",  # bf16 where the GPU has it (A100, H100, L4...), else fp32
        "data.source": args.data,
        # One folder for both runs: same data settings, so the pipeline runs once.
        "data.output_dir": str(workdir / "data"),
        "data.max_length": args.max_length,
        "training.num_workers": workers,
        "training.use_gpu": not args.cpu,
        "training.strategy": "deepspeed" if strategy == "zero3" else "ddp",
        "training.max_steps": args.steps,
        "training.batch_size": BATCH_SIZE,
        "training.warmup_ratio": 0.0,
        # One evaluation and one checkpoint, at the last step.
        "training.eval_steps": args.steps,
        "training.save_steps": args.steps,
        # One rank gets a question more than the others: under ZeRO-3 every forward pass is a
        # collective, and uneven shares are what hung the first runs.
        "training.eval_mcq_limit": workers * BATCH_SIZE + 1,
        "training.storage_path": str(workdir / "runs"),
        "training.run_name": strategy,
        "training.max_failures": 0,  # a smoke run should fail loudly, not retry
    }
    if strategy == "zero3":
        values["training.zero_stage"] = 3
        if args.steps >= 2:
            # A worker dies once, right after a mid-run checkpoint: the run must resume from it
            # (DeepSpeed's partitioned optimizer state included) and still finish.
            half = args.steps // 2
            values.update({"training.eval_steps": half, "training.save_steps": half,
                           "training.fail_at_step": half + 1, "training.max_failures": 1})
    if args.cpu:
        # The in-training evaluation reads the whole validation split: about 95 questions of
        # the dev file instead of 318, which on CPU took longer than the steps themselves.
        values["data.val_fraction"] = 0.03
    return [f"{key}={value}" for key, value in values.items()]


def serve_overrides(args, key_file: str) -> dict:
    """Build args laid over gpu.yaml's: SmolLM2 instead of Phi-2 + adapter, a throwaway key file."""
    out = {"model": args.model, "adapter": None, "api_key_file": key_file}
    if args.cpu:
        out.update(load_in_4bit=False, model_num_gpus=0)
    return out


# Per-deployment CPU asks on --cpu: gpu.yaml's (a GPU and 4 CPUs per model replica) do not fit a laptop.
CPU_DEPLOYMENT_ASKS = {"MedQAModel": 1.0, "SafetyGuard": 0.25, "MedQAIngress": 0.25}


def smoke_schema(schema: dict, cpu: bool) -> dict:
    """gpu.yaml's deploy schema under its own name and route prefix, every option kept except,
    with `cpu`, the GPU asks: one replica per deployment and small CPU reservations."""
    app = {**schema["applications"][0], "name": APP, "route_prefix": f"/{APP}",
           # The replicas may run on a Ray this process did not start: offline there too.
           "runtime_env": {"env_vars": OFFLINE_ENV}}
    if cpu:
        app["deployments"] = [
            {**{k: v for k, v in d.items() if k != "autoscaling_config"}, "num_replicas": 1,
             "ray_actor_options": {**d.get("ray_actor_options", {}), "num_gpus": 0,
                                   "num_cpus": CPU_DEPLOYMENT_ASKS.get(d["name"], 0.25)}}
            for d in app.get("deployments", [])]
    return {**schema, "applications": [app]}


def minimum_asks(schema: dict) -> dict:
    """CPUs and GPUs the first app's deployments reserve at their minimum replica counts."""
    total = Counter()
    for d in schema["applications"][0].get("deployments", []):
        replicas = d.get("num_replicas") or (d.get("autoscaling_config") or {}).get("min_replicas", 1)
        for option, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            total[resource] += replicas * (d.get("ray_actor_options") or {}).get(option, 0)
    return dict(total)


def mcq_bodies(records: list[dict], n: int) -> list[dict]:
    """`n` /v1/mcq bodies, cycling through the questions."""
    return [{"question": r["question"], "options": list(r["options"])} for r in (records * n)[:n]]


def json_line(figures: dict) -> str:
    """The one line printed at the end (paths and numbers only, so plain JSON)."""
    return json.dumps(figures)


def versions() -> dict:
    """Installed versions (read from package metadata: importing deepspeed picks an accelerator)."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------- Ray


def connect_ray(address: Optional[str]) -> bool:
    """Reuse an initialised Ray, attach to `address`, or start a local one; True if this call
    started or attached (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, runtime_env={"env_vars": OFFLINE_ENV})
        return True
    from medqa.config import load_config
    from medqa.training.driver import init_ray

    init_ray(load_config())  # sized for the default 2 workers, or every core; GPUs auto-detected
    return True


def device_figures(cpu: bool) -> dict:
    import ray
    import torch

    gpus = 0 if cpu else int(ray.cluster_resources().get("GPU", 0))
    name = torch.cuda.get_device_name(0) if gpus and torch.cuda.is_available() else None
    bf16 = bool(gpus and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {"device": "cuda" if gpus else "cpu", "gpu_count": gpus, "gpu_name": name, "bf16": bf16}


# ---------------------------------------------------------------- stages


def train_stage(overrides: list[str]) -> dict:
    from medqa.config import load_config
    from medqa.training.driver import run_training

    summary, _ = run_training(load_config(None, overrides))
    state = json.loads((Path(summary["checkpoint"]) / "trainer_state.json").read_text())
    metrics = summary["metrics"]
    return {
        "steps": summary["global_step"],
        "max_steps": summary["max_steps"],
        "losses": [round(row["loss"], 4) for row in state["log_history"] if "loss" in row],
        "eval_loss": metrics.get("eval_loss"),
        "eval_accuracy": metrics.get("eval_accuracy"),
        "train_s": summary["wall_time_s"],  # fit() wall time: worker start, model load, steps, save
        "train_runtime_s": summary["train_runtime_s"],  # the HF Trainer's own loop
        "resumed_from_step": summary["resumed_from_step"],  # after the injected failure (ZeRO-3)
        "checkpoint": summary["checkpoint"],
    }


def eval_stage(args, data_dir: Path, adapter: Optional[str], gpus: int) -> dict:
    from medqa.data.record import MCQRecord
    from medqa.evaluation.distributed import ray_scorer
    from medqa.evaluation.runner import build_report
    from medqa.training.driver import mcq_records

    records = [MCQRecord.from_dict(r) for r in mcq_records(data_dir, args.eval_limit)]  # held out
    # On this Ray (main started or joined it), so closing the scorer leaves Ray running.
    with ray_scorer(args.model, adapter, not args.cpu, "letter", BATCH_SIZE * 2, EVAL_WORKERS,
                    gpus_per_worker=min(1.0, gpus / EVAL_WORKERS) if gpus else 0.0) as scorer:
        started = time.perf_counter()
        scores = scorer(records)
        seconds = time.perf_counter() - started
    report = build_report(records, scores, seconds)
    return {
        "workers": EVAL_WORKERS,
        "workers_used": scorer.workers_used,
        "rows": report["n"],
        "rows_expected": len(records),
        "accuracy": round(report["accuracy"], 4),
        "majority_baseline": round(report["baselines"]["majority"], 4),
        "seconds": round(seconds, 2),  # wall: actor start and model load included
        "rows_per_s": round(report["n"] / seconds, 2),
        "scoring_s": round(scorer.scoring_s, 2),  # inside the actors, summed
        "adapter": adapter,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_stage(args, records: list[dict], workdir: Path) -> dict:
    import ray
    import requests
    from ray import serve

    from medqa.runtime import private
    from medqa.serving import command

    key = secrets.token_urlsafe(24)
    key_file = workdir / "api-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    client = private.serve_client()
    # Serve has one HTTP proxy: join it where it listens, else start it on a free loopback port.
    port = client.http_config.port if client else _free_port()
    what = command.plan(str(SERVE_CONFIG), serve_overrides(args, str(key_file)), "127.0.0.1", port)
    what["schema"] = smoke_schema(what["schema"], args.cpu)
    url = f"http://127.0.0.1:{port}/{APP}"
    asks, have = minimum_asks(what["schema"]), ray.cluster_resources()
    short = {k: (v, have.get(k, 0)) for k, v in asks.items() if v > have.get(k, 0)}
    if short:  # Serve would wait for them for ever: say so at once
        raise RuntimeError(f"{SERVE_CONFIG.name} reserves more than this Ray has (asked, present): {short}")
    try:
        started = time.perf_counter()
        command.deploy(what, what["schema"]["http_options"])
        command.wait_running([APP], timeout=300)
        deploy_s = time.perf_counter() - started
        unauthenticated = requests.post(f"{url}/v1/mcq", json=mcq_bodies(records, 1)[0], timeout=60).status_code
        log = fire(f"{url}/v1/mcq", mcq_bodies(records, args.requests), CONCURRENCY,
                   headers={"Authorization": f"Bearer {key}"}, timeout=120)
    finally:
        if client is None:  # this stage started Serve
            serve.shutdown()
        else:
            serve.delete(APP)
    latencies = [shot.ms for shot in log]
    answers = [json.loads(shot.body) for shot in log if shot.status == 200]
    return {
        "config": str(SERVE_CONFIG.relative_to(REPO)),
        "requests": len(log),
        "status_counts": dict(Counter(str(shot.status) for shot in log)),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "answered": sum(a.get("answer_index") is not None for a in answers),
        "refused_or_emergency": sum(bool(a.get("refused") or a.get("emergency")) for a in answers),
        "unauthenticated_status": unauthenticated,  # the key file is in force: expect 401
        "deploy_s": round(deploy_s, 1),
        "concurrency": CONCURRENCY,
    }


# ---------------------------------------------------------------- main


def _stage(figures: dict, name: str, run: Callable[[], dict]) -> Optional[dict]:
    """Run one stage; its figures, or its error under figures["errors"] (and None)."""
    try:
        figures[name] = run()
        return figures[name]
    except Exception as err:  # noqa: BLE001 - recorded; the other stages still run
        figures["errors"][name] = f"{type(err).__name__}: {err}"[:2000]
        print(f"gpu_smoke: stage {name} failed: {err!r}", file=sys.stderr)
        return None


def main(argv: Optional[list[str]] = None) -> dict:
    import ray

    args = parse_args(argv)
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)  # before Ray starts: a local Ray's workers inherit it
    started = time.perf_counter()
    owns_ray = connect_ray(args.address)
    try:
        device = device_figures(args.cpu)
        if not args.cpu and not device["gpu_count"]:
            raise SystemExit("gpu_smoke: Ray sees no GPU; run with --cpu for the CPU variant")
        workers = device["gpu_count"] or 2
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="medqa-gpu-smoke-")).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        figures = {**device, "model": args.model, "workers": workers, "steps": args.steps,
                   "max_length": args.max_length, "versions": versions(), "errors": {}}
        ddp = _stage(figures, "ddp", lambda: train_stage(train_overrides(args, "ddp", workers, workdir)))
        _stage(figures, "zero3", lambda: train_stage(train_overrides(args, "zero3", workers, workdir)))
        # Without a DDP adapter (its stage failed) the base model is evaluated.
        adapter = ddp["checkpoint"] if ddp else None
        _stage(figures, "eval", lambda: eval_stage(args, workdir / "data", adapter, device["gpu_count"]))
        from medqa.training.driver import mcq_records

        _stage(figures, "serve", lambda: serve_stage(args, mcq_records(workdir / "data", args.requests), workdir))
        figures["workdir"] = str(workdir)
        figures["total_s"] = round(time.perf_counter() - started, 1)
        return figures
    finally:
        if owns_ray:
            ray.shutdown()


if __name__ == "__main__":
    result = main()
    print(json_line(result))
    sys.exit(1 if result["errors"] else 0)
