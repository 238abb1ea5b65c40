"""The application's build args: a typed view of the serving settings, over the config (no Ray)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError


def test_build_args_override_the_config(tmp_path):
    from medqa.serving.app import BuildArgs, resolve_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name: smollm2-135m}\nserving: {max_batch_size: 4, abstain_threshold: 0.5}\n")
    model, serving = resolve_settings(BuildArgs(config=str(cfg), model="tiny-random", max_batch_size=12))
    assert (model.name, model.load_in_4bit) == ("tiny-random", False)
    assert (serving.max_batch_size, serving.abstain_threshold) == (12, 0.5)
    from medqa.config import ConfigError

    with pytest.raises(ConfigError):
        resolve_settings(BuildArgs(min_replicas=3, max_replicas=2))
    with pytest.raises(ValidationError, match="max_batch_sise"):  # a typo in a Serve config's args
        BuildArgs(max_batch_sise=4)


def test_build_args_are_the_serving_settings():
    import dataclasses

    from medqa.config import ServingConfig
    from medqa.serving.app import BuildArgs

    settings = {f.name for f in dataclasses.fields(ServingConfig)} - {"host", "port"}
    assert set(BuildArgs.model_fields) == settings | {"config", "model", "validator"}
