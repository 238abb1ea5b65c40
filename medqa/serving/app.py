"""The medqa Ray Serve application, built from one `ServingConfig`.

    MedQAIngress  (ingress.py: FastAPI /health /generate /v1/mcq /v1/chat/completions; gate.py first)
      ├── SafetyGuard   (guard.py: input checks (emergency, crisis, harmful request) and output
      │                  checks (interactions, doses, disclaimer) through medqa.safety)
      └── MedQAModel    (model.py: base model (+ LoRA adapter), more adapters loaded per request
                         through Serve model multiplexing; @serve.batch scoring and generation
                         merged by batching.BatchMerger, streamed generation, autoscaled; MCQ
                         scores calibrated into answer sets when the model has a calibration)

Run it (foreground; Ctrl-C stops it):

    serve run serve_configs/local.yaml                       # CPU, embedded SmolLM2
    serve run medqa.serving.app:build_app model=tiny-random  # typed args (BuildArgs)
    medqa serve --config serve_configs/local.yaml            # same, with clean shutdown

Deploy it to a running cluster (returns at once; the cluster keeps serving):

    ray start --head                      # or an existing cluster / `ray up cluster.yaml`
    serve deploy serve_configs/gpu.yaml   # Phi-2 + adapter on GPUs; `serve status` to watch
    serve shutdown -y                     # remove it

The API key is read by the ingress replicas themselves, from `serving.api_key_file`
or their environment (`serving.api_key_env`, MEDQA_API_KEY): it never travels in
deployment options, which Ray shows in its dashboard and logs.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Optional

from pydantic import ConfigDict, Field, create_model
from ray import serve

from medqa.config import ConfigError, ModelConfig, ServingConfig, load_config
from medqa.serving.calibrated import adapter_calibrations, load_calibration
from medqa.serving.guard import DEFAULT_VALIDATOR, SafetyGuard
from medqa.serving.ingress import MedQAIngress
from medqa.serving.model import MedQAModel

_NOT_BUILD_ARGS = {"host", "port"}  # the proxy's, set in a Serve config's http_options or by `medqa serve`


def _serving_fields() -> dict:
    hints = typing.get_type_hints(ServingConfig)
    return {f.name: (Optional[hints[f.name]], Field(None, description=f.metadata["doc"]))
            for f in dataclasses.fields(ServingConfig) if f.name not in _NOT_BUILD_ARGS}


BuildArgs = create_model(
    "BuildArgs",
    __config__=ConfigDict(extra="forbid"),
    __doc__="""`serve run medqa.serving.app:build_app key=value ...` arguments: every
    `serving.*` setting, plus these. Unset fields come from `config` (a medqa YAML with
    `model:` and `serving:` sections), then from the ServingConfig defaults.""",
    config=(Optional[str], Field(None, description="medqa config YAML (model and serving sections).")),
    model=(Optional[str], Field(None, description="Preset, hub id or local path of the base model.")),
    validator=(str, Field(DEFAULT_VALIDATOR, description="`module:Class` of the safety validator.")),
    **_serving_fields(),
)


def resolve_settings(args) -> tuple[ModelConfig, ServingConfig]:
    """Defaults → config file → explicit build args (validated by the config dataclasses)."""
    cfg = load_config(args.config)
    given = {k: v for k, v in args.model_dump(exclude={"config", "model", "validator"}).items() if v is not None}
    if "adapters" in given:  # `--adapter NAME=DIR` adds to the config file's adapters
        given["adapters"] = {**cfg.serving.adapters, **given["adapters"]}
    serving = dataclasses.replace(cfg.serving, **given)
    model = dataclasses.replace(cfg.model, name=args.model or cfg.model.name, load_in_4bit=serving.load_in_4bit)
    return model, serving


def scaling_options(serving: ServingConfig) -> dict:
    if serving.num_replicas:
        return {"num_replicas": serving.num_replicas}
    return {"autoscaling_config": {"min_replicas": serving.min_replicas, "max_replicas": serving.max_replicas,
                                   "target_ongoing_requests": serving.target_ongoing_requests,
                                   "upscale_delay_s": serving.upscale_delay_s,
                                   "downscale_delay_s": serving.downscale_delay_s,
                                   "look_back_period_s": serving.look_back_period_s}}


def check_adapters(serving: ServingConfig) -> None:
    """Every adapter a request may name is a saved LoRA adapter (checked where the app is built,
    so a typo fails the deploy, not a user's request)."""
    from pathlib import Path

    for name, path in serving.adapters.items():
        if not (Path(path) / "adapter_config.json").is_file():
            raise ConfigError(f"serving.adapters.{name}: {path} is not a LoRA adapter directory "
                              "(no adapter_config.json)")


def calibrations(serving: ServingConfig) -> dict:
    """The calibration of each model a request may name ("" the served model, else the adapter's
    name), read here, not in the replicas: a bad file fails the deploy at once."""
    found = {"": load_calibration(serving), **adapter_calibrations(serving)}
    return {name: cal.to_dict() for name, cal in found.items() if cal is not None}


def build_app(args) -> serve.Application:
    if not isinstance(args, BuildArgs):
        args = BuildArgs.model_validate(args or {})
    model_cfg, serving = resolve_settings(args)
    check_adapters(serving)
    model = MedQAModel.options(
        **scaling_options(serving), max_ongoing_requests=serving.max_ongoing_requests,
        max_queued_requests=serving.max_queued_requests,
        ray_actor_options={"num_cpus": serving.model_num_cpus, "num_gpus": serving.model_num_gpus},
    ).bind(dataclasses.asdict(model_cfg), dataclasses.asdict(serving), calibrations(serving))
    safety = SafetyGuard.options(ray_actor_options={"num_cpus": serving.small_num_cpus}).bind(args.validator)
    return MedQAIngress.options(ray_actor_options={"num_cpus": serving.small_num_cpus}).bind(
        model, safety, dataclasses.asdict(serving), model_cfg.name)
