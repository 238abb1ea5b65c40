"""Typed configuration: defaults, then a YAML file, then dotted `key=value` overrides.

Every field carries its documentation in `metadata["doc"]` (the README's
configuration reference is generated from it). Sections validate themselves in
`__post_init__`; the loader checks keys and types and prefixes every error with
the dotted key it concerns, so `training.lerning_rate=1` fails with a message
naming `training.lerning_rate`.

May import: nothing of medqa.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A served adapter's name: the `<name>` of a request's `model: <base>:<name>`."""


class ConfigError(ValueError):
    """A config key is unknown, has the wrong type or is out of range."""


def opt(default: Any, doc: str) -> Any:
    """A dataclass field with documentation; mutable defaults are copied per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


@dataclass
class DataConfig:
    source: str = opt("sample", "Training data: `sample` (shipped), a .jsonl/.json/.csv/.parquet file, or a hub id "
                                "such as `openlifescienceai/medmcqa:train`.")
    eval_source: Optional[str] = opt(None, "Evaluation data checked for contamination; its questions are removed from "
                                           "the training data.")
    output_dir: str = opt("runs/data", "Where `medqa preprocess` writes parquet splits, rejects and the summary.")
    val_fraction: float = opt(0.1, "Fraction of rows held out for validation, stratified by subject.")
    augment_factor: int = opt(2, "Versions of each training row, options shuffled so answer positions balance to 25% "
                                 "each (1 = no augmentation).")
    near_duplicate_threshold: float = opt(0.9, "Jaccard similarity of the word 3-grams of question + options at or "
                                               "above which two rows count as near-duplicates (the later one is "
                                               "dropped).")
    cop_base: Optional[int] = opt(None, "MedMCQA `cop` counted from 0 (hub) or 1 (original release); empty = detect "
                                        "per source (1 when some cop is 4 and none is 0).")
    max_question_chars: int = opt(4000, "Rows whose question is longer are rejected.")
    max_option_chars: int = opt(1000, "Rows with a longer option are rejected.")
    max_length: int = opt(512, "Token length of a tokenised training example (longer ones are truncated from the left "
                               "of the question).")
    loss_on: Literal["answer", "answer_explanation"] = opt(
        "answer", "Which tokens carry the loss: the answer only, or the answer plus its explanation.")
    strict: bool = opt(False, "Fail on the first malformed row instead of writing it to rejects.jsonl.")

    def __post_init__(self) -> None:
        _check(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")
        _check(1 <= self.augment_factor <= 24, "augment_factor", "must be between 1 and 24")
        _check(0.0 < self.near_duplicate_threshold <= 1.0, "near_duplicate_threshold", "must be in (0, 1]")
        _check(self.cop_base in (None, 0, 1), "cop_base", "must be 0, 1 or empty")
        for key in ("max_question_chars", "max_option_chars", "max_length"):
            _check(getattr(self, key) > 0, key, "must be positive")


@dataclass
class ModelConfig:
    name: str = opt("smollm2-135m", "Preset (`smollm2-135m`, `phi-2`, `tiny-random`), hub id or local checkpoint path.")
    load_in_4bit: bool = opt(True, "Load the base model in 4-bit NF4 through bitsandbytes (QLoRA).")
    quant_type: Literal["nf4", "fp4"] = opt("nf4", "bitsandbytes 4-bit quantisation type.")
    double_quant: bool = opt(True, "Quantise the quantisation constants too (saves about 0.4 bits per parameter).")
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = opt(
        "auto", "Compute dtype; `auto` picks bfloat16 where the device supports it, else float32.")
    cache_dir: Optional[str] = opt(None, "Where converted checkpoints are cached (default: $MEDQA_CACHE or "
                                         "~/.cache/medqa).")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (needed by some older checkpoints).")


@dataclass
class LoraConfig:
    r: int = opt(16, "LoRA rank.")
    alpha: int = opt(32, "LoRA scaling numerator (scale = alpha / r).")
    dropout: float = opt(0.05, "Dropout on the LoRA input.")
    target_modules: Optional[list[str]] = opt(None, "Module names to adapt; empty means the preset's targets.")

    def __post_init__(self) -> None:
        _check(self.r > 0, "r", "must be positive")
        _check(self.alpha > 0, "alpha", "must be positive")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


@dataclass
class TrainingConfig:
    num_workers: int = opt(2, "Ray Train workers (one process each).")
    use_gpu: bool = opt(False, "Give every worker a GPU.")
    cpus_per_worker: int = opt(1, "CPUs reserved per worker.")
    strategy: Literal["ddp", "deepspeed"] = opt("ddp", "Distributed strategy: plain DDP or DeepSpeed ZeRO.")
    zero_stage: int = opt(2, "DeepSpeed ZeRO stage (2 or 3) when strategy is deepspeed.")
    epochs: float = opt(1.0, "Training epochs (ignored when max_steps > 0).")
    max_steps: int = opt(-1, "Optimizer steps; -1 means run for `epochs`.")
    batch_size: int = opt(4, "Examples per device per step.")
    gradient_accumulation_steps: int = opt(1, "Micro-batches accumulated per optimizer step.")
    learning_rate: float = opt(2e-4, "Peak learning rate.")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    warmup_ratio: float = opt(0.05, "Fraction of steps spent warming the learning rate up.")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = opt(
        "cosine", "Learning-rate schedule after warm-up.")
    batching: Literal["padding", "group_by_length", "packing"] = opt(
        "group_by_length", "How examples become batches (see benchmarks/RESULTS.md for the measured choice).")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass to save memory.")
    logging_steps: int = opt(1, "Log the training loss every N steps.")
    eval_steps: int = opt(50, "Evaluate (loss and multiple-choice accuracy) every N steps.")
    eval_mcq_limit: int = opt(64, "Validation questions scored for accuracy at each evaluation (0 = loss only).")
    calibration_alpha: float = opt(0.1, "After training, those validation questions fit `calibration.json` beside "
                                        "the final adapter (temperature, 1 - alpha answer sets; `medqa calibrate` "
                                        "fits one on more rows); 0 = none.")
    save_steps: int = opt(50, "Checkpoint every N steps.")
    keep_checkpoints: int = opt(2, "Checkpoints kept by Ray Train (best by eval loss).")
    max_failures: int = opt(2, "Worker-group failures tolerated; the run restarts from the latest checkpoint.")
    storage_path: str = opt("runs", "Ray Train / Tune storage path (local folder or cloud URI).")
    run_name: Optional[str] = opt(None, "Run name under storage_path (default: generated).")
    resume_from: Optional[str] = opt(None, "`latest` or a checkpoint path to resume from.")
    fail_at_step: int = opt(-1, "Testing aid: rank 0 raises once at this step to exercise fault tolerance.")

    def __post_init__(self) -> None:
        for key in ("num_workers", "cpus_per_worker", "batch_size", "gradient_accumulation_steps",
                    "logging_steps", "eval_steps", "save_steps", "keep_checkpoints"):
            _check(getattr(self, key) >= 1, key, "must be at least 1")
        _check(self.zero_stage in (2, 3), "zero_stage", "must be 2 or 3")
        _check(0.0 <= self.calibration_alpha < 1.0, "calibration_alpha", "must be in [0, 1)")
        _check(self.learning_rate > 0, "learning_rate", "must be positive")
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "must be in [0, 1)")
        _check(self.epochs > 0, "epochs", "must be positive")
        _check(self.max_steps == -1 or self.max_steps > 0, "max_steps", "must be -1 or positive")
        _check(self.max_failures >= 0, "max_failures", "must be >= 0")


@dataclass
class TuningConfig:
    num_samples: int = opt(4, "Trials sampled from the search space.")
    metric: str = opt("eval_loss", "Metric ASHA compares (`eval_loss` or `eval_accuracy`).")
    mode: Optional[Literal["min", "max"]] = opt(
        None, "Whether the metric is minimised or maximised (empty: min for eval_loss, max for eval_accuracy).")
    max_t: int = opt(4, "Maximum training iterations (evaluations) per trial.")
    grace_period: int = opt(1, "Iterations every trial runs before ASHA may stop it.")
    reduction_factor: int = opt(2, "ASHA keeps 1/reduction_factor of trials at each rung.")
    lora_r: list[int] = opt([8, 16, 32], "LoRA ranks to choose from.")
    lr_min: float = opt(1e-5, "Lower bound of the log-uniform learning-rate range.")
    lr_max: float = opt(1e-3, "Upper bound of the log-uniform learning-rate range.")
    alpha_per_r: Optional[float] = opt(2.0, "Tie lora alpha to r (alpha = alpha_per_r * r); empty searches alpha in "
                                            "lora_alpha.")
    lora_alpha: list[int] = opt([16, 32, 64], "LoRA alphas to choose from when alpha is not tied to r.")
    lora_dropout: list[float] = opt([0.0, 0.05, 0.1], "LoRA dropouts to choose from.")
    searcher: Literal["random", "optuna", "hyperopt"] = opt(
        "random", "Search algorithm; random is ASHA's classic partner.")
    max_concurrent_trials: int = opt(0, "Trials running at once (0 = as many as resources allow).")
    scheduler: Literal["asha", "fifo"] = opt("asha", "Trial scheduler: ASHA early stopping, or FIFO (every trial runs "
                                                     "max_t iterations; the baseline).")
    grid: bool = opt(False, "Run every combination of lora_r, lr_grid, lora_dropout (and lora_alpha) instead of "
                            "sampling; num_samples repeats the grid.")
    lr_grid: list[float] = opt([], "Learning rates tried in grid mode, in order (empty: 3 log-spaced values from "
                                   "lr_min to lr_max).")
    trial_cpus: float = opt(0.5, "CPUs reserved by each trial's driver (its Train workers reserve their own).")
    name: Optional[str] = opt(None, "Search name under training.storage_path (default: generated).")
    resume: Optional[str] = opt(None, "Search directory to resume with `Tuner.restore` (unfinished and errored trials "
                                      "rerun).")

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, "num_samples", "must be at least 1")
        _check(self.max_t >= 1, "max_t", "must be at least 1")
        _check(1 <= self.grace_period <= self.max_t, "grace_period", "must be between 1 and max_t")
        _check(self.reduction_factor >= 2, "reduction_factor", "must be at least 2")
        _check(0 < self.lr_min < self.lr_max, "lr_min", "must be positive and below lr_max")
        _check(bool(self.lora_r) and all(r > 0 for r in self.lora_r), "lora_r",
               "must be a non-empty list of positive ranks")
        _check(self.metric in ("eval_loss", "eval_accuracy"), "metric", "must be eval_loss or eval_accuracy")
        if self.mode is None:
            self.mode = "min" if self.metric == "eval_loss" else "max"
        _check(self.alpha_per_r is None or self.alpha_per_r > 0, "alpha_per_r", "must be positive or empty")
        _check(self.alpha_per_r is not None or bool(self.lora_alpha), "lora_alpha",
               "must be non-empty when alpha is not tied to r")
        _check(bool(self.lora_dropout) and all(0.0 <= d < 1.0 for d in self.lora_dropout), "lora_dropout",
               "must be a non-empty list in [0, 1)")
        _check(all(lr > 0 for lr in self.lr_grid), "lr_grid", "learning rates must be positive")
        _check(self.trial_cpus >= 0, "trial_cpus", "must be >= 0")
        _check(self.max_concurrent_trials >= 0, "max_concurrent_trials", "must be >= 0")


@dataclass
class ServingConfig:
    host: str = opt("127.0.0.1", "HTTP host Ray Serve binds (`medqa serve`; a Serve config file has its own "
                                 "`http_options`).")
    port: int = opt(8000, "HTTP port.")
    adapter: Optional[str] = opt(None, "LoRA adapter directory served on top of the base model.")
    adapters: dict[str, str] = opt({}, "More LoRA adapters a request may choose with `model: <base>:<name>` "
                                       "(`{name: directory}`; `medqa serve --adapter NAME=DIR`); loaded by a "
                                       "replica on first use.")
    max_adapters_per_replica: int = opt(4, "Adapters a model replica keeps loaded (least recently used unloaded "
                                           "first); requests are routed to replicas that hold theirs.")
    max_batch_size: int = opt(8, "`@serve.batch` maximum batch size.")
    batch_wait_timeout_s: float = opt(0.02, "`@serve.batch` wait for a batch to fill.")
    min_replicas: int = opt(1, "Model deployment autoscaling minimum.")
    max_replicas: int = opt(2, "Model deployment autoscaling maximum.")
    target_ongoing_requests: int = opt(4, "Autoscaling target of ongoing requests per replica.")
    upscale_delay_s: float = opt(10.0, "Seconds the load must stay above target before a model replica is added.")
    downscale_delay_s: float = opt(120.0, "Seconds the load must stay below target before a model replica is removed.")
    look_back_period_s: float = opt(30.0, "Window over which the autoscaler averages the load.")
    num_replicas: Optional[int] = opt(None, "Fixed model replicas instead of autoscaling.")
    load_in_4bit: bool = opt(False, "Serve the base model in 4-bit NF4 (saves GPU memory; slower than full precision "
                                    "on CPU).")
    model_num_cpus: float = opt(1.0, "CPUs reserved per model replica.")
    model_num_gpus: float = opt(0.0, "GPUs reserved per model replica (fractions share a GPU).")
    small_num_cpus: float = opt(0.25, "CPUs reserved per ingress and safety replica.")
    max_ongoing_requests: int = opt(32, "Requests a model replica accepts at once (queued into `@serve.batch` "
                                        "batches); at least 4 x max_batch_size lets merged batches fill.")
    max_queued_requests: int = opt(64, "Requests the ingress queues for busy model replicas; beyond that a request "
                                       "gets 503 with `Retry-After` at once.")
    request_timeout_s: float = opt(60.0, "A request not answered in this many seconds gets 504 and its work is "
                                         "cancelled.")
    retry_after_s: int = opt(2, "`Retry-After` seconds sent with a 503.")
    # Request limits (checked after authentication, before any work)
    max_body_bytes: int = opt(262_144, "Larger request bodies get 413 before they are parsed.")
    max_question_chars: int = opt(4000, "Longer questions (and chat turns) get 413.")
    max_option_chars: int = opt(1000, "Longer MCQ options get 413.")
    max_messages: int = opt(64, "Chat requests with more messages get 422.")
    max_stop_sequences: int = opt(4, "Requests with more stop sequences get 422.")
    max_new_tokens: int = opt(512, "Largest `max_length` / `max_tokens` a request may ask for (larger ones get a 422).")
    abstain_threshold: float = opt(0.35, "`/v1/mcq` answers are flagged `abstained` when the top option probability is "
                                         "below this; only without a calibration (with one, `abstained` means the "
                                         "answer set holds more than one option).")
    calibration: Optional[str] = opt(None, "Calibration JSON (`medqa calibrate --output`) applied to `/v1/mcq`: "
                                           "calibrated probabilities and a conformal `prediction_set`. Unset: the "
                                           "adapter directory's `calibration.json` if there is one; `none`: no "
                                           "calibration even then. Read where the app is built.")
    # Security (the operator's decisions; no request can change them)
    api_key_env: str = opt("MEDQA_API_KEY", "Environment variable of the ingress replicas that, when set, holds the "
                                            "API key required in `Authorization: Bearer`.")
    api_key_file: Optional[str] = opt(None, "File holding the API key (a mounted Kubernetes Secret); read by the "
                                            "ingress replicas, never passed through Ray.")
    allow_unauthenticated: bool = opt(False, "Let a server bound beyond loopback run without an API key.")
    allow_safety_opt_out: bool = opt(False, "Honour a request's `use_safety: false` (otherwise 403). Emergency and "
                                            "crisis handling stays on regardless.")

    def __post_init__(self) -> None:
        _check(1 <= self.port <= 65535, "port", "must be a TCP port")
        _check(self.max_batch_size >= 1, "max_batch_size", "must be at least 1")
        _check(self.batch_wait_timeout_s >= 0, "batch_wait_timeout_s", "must be >= 0")
        _check(1 <= self.min_replicas <= self.max_replicas, "min_replicas", "must be between 1 and max_replicas")
        _check(self.num_replicas is None or self.num_replicas >= 1, "num_replicas", "must be at least 1 or empty")
        _check(self.target_ongoing_requests >= 1, "target_ongoing_requests", "must be at least 1")
        _check(self.upscale_delay_s >= 0 and self.downscale_delay_s >= 0, "upscale_delay_s", "delays must be >= 0")
        _check(self.look_back_period_s > 0, "look_back_period_s", "must be positive")
        _check(self.model_num_cpus >= 0 and self.model_num_gpus >= 0 and self.small_num_cpus >= 0, "model_num_cpus",
               "resources must be >= 0")
        for key in ("max_ongoing_requests", "max_queued_requests", "max_body_bytes", "max_question_chars",
                    "max_option_chars", "max_messages", "retry_after_s"):
            _check(getattr(self, key) >= 1, key, "must be at least 1")
        _check(self.max_stop_sequences >= 0, "max_stop_sequences", "must be >= 0")
        _check(self.request_timeout_s > 0, "request_timeout_s", "must be positive")
        _check(0.0 <= self.abstain_threshold <= 1.0, "abstain_threshold", "must be in [0, 1]")
        _check(self.calibration is None or bool(self.calibration.strip()), "calibration",
               "must be the path of a calibration JSON, `none`, or unset")
        _check(1 <= self.max_new_tokens <= 2048, "max_new_tokens", "must be between 1 and 2048")
        _check(self.max_adapters_per_replica >= 1, "max_adapters_per_replica", "must be at least 1")
        for name, path in self.adapters.items():
            _check(bool(ADAPTER_NAME.fullmatch(name)) and name != "default", f"adapters.{name}",
                   "adapter names are letters, digits, '_', '-' and '.' (up to 64, not 'default')")
            _check(bool(str(path).strip()), f"adapters.{name}", "must be an adapter directory")


@dataclass
class WandbConfig:
    enabled: bool = opt(False, "Log to Weights & Biases.")
    project: str = opt("medqa", "wandb project.")
    mode: Literal["offline", "online", "disabled"] = opt(
        "offline", "`online` needs WANDB_API_KEY; offline runs can be synced later.")


@dataclass
class Config:
    seed: int = opt(42, "Seed for data splits, augmentation and training.")
    data: DataConfig = opt(None, "Data pipeline.")
    model: ModelConfig = opt(None, "Base model.")
    lora: LoraConfig = opt(None, "LoRA adapter.")
    training: TrainingConfig = opt(None, "Ray Train fine-tuning.")
    tuning: TuningConfig = opt(None, "Ray Tune search.")
    serving: ServingConfig = opt(None, "Ray Serve application.")
    wandb: WandbConfig = opt(None, "Experiment tracking.")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if dataclasses.is_dataclass(_hint(Config, f.name)) and getattr(self, f.name) is None:
                setattr(self, f.name, _hint(Config, f.name)())


# ---------------------------------------------------------------- loading


def _hint(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint, allowing int→float; raise naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is Literal:
        _check(value in args, key, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        _check(isinstance(value, list), key, f"must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _check(isinstance(value, dict), key, f"must be a mapping, got {value!r}")
        return {_coerce(k, args[0], f"{key} (a key)"): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if hint is float and not isinstance(value, bool):
        # YAML reads `1e-4` (no dot) as a string; accept any numeral for a float.
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    _check(ok, key, f"must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, values: dict, prefix: str) -> Any:
    _check(isinstance(values, dict), prefix.rstrip("."), "must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        _check(isinstance(tree, dict), dotted, "cannot set a key below a value")
    tree[leaf] = value


def parse_overrides(overrides: list[str]) -> dict:
    """`["training.learning_rate=1e-4", "lora.r=8"]` → nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        _check(bool(sep) and bool(key), item, "overrides look like key.sub=value")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(values: dict) -> Config:
    return _build(Config, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file at `path`, then dotted overrides."""
    values: dict = {}
    if path is not None:
        text = Path(path).read_text()
        values = yaml.safe_load(text) or {}
        _check(isinstance(values, dict), str(path), "the config file must hold a mapping")
    return from_dict(_merge(values, parse_overrides(overrides or [])))


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return path


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args).replace("NoneType", "null")
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"map[{_type_name(args[0])}, {_type_name(args[1])}]"
    return hint.__name__


def describe_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, doc) for every leaf field: the configuration reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows += describe_fields(hint, f"{prefix}{f.name}.")
        else:
            rows.append((f"{prefix}{f.name}", _type_name(hint), getattr(defaults, f.name), f.metadata.get("doc", "")))
    return rows


def reference_markdown() -> str:
    """The configuration reference as a Markdown table (README section)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, type_name, default, doc in describe_fields():
        shown = ("" if default is None
                 else yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip())
        lines.append(f"| `{key}` | {type_name} | `{shown}` | {doc} |")
    return "\n".join(lines)
