import pytest

from medqa.config import Config, ConfigError, describe_fields, load_config, parse_overrides, save_config


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 0.001\n  num_workers: 1\nlora:\n  r: 4\n")
    cfg = load_config(path, ["training.learning_rate=1e-4", "data.eval_source=eval.jsonl"])
    assert cfg.training.learning_rate == 1e-4  # override wins over YAML
    assert cfg.training.num_workers == 1  # YAML wins over default
    assert cfg.lora.r == 4
    assert cfg.lora.alpha == Config().lora.alpha  # default kept
    assert cfg.data.eval_source == "eval.jsonl"


def test_dump_and_reload_round_trips(tmp_path):
    cfg = load_config(None, ["tuning.lora_r=[4, 8]", "model.name=tiny-random", "training.resume_from=latest"])
    assert load_config(save_config(cfg, tmp_path / "resolved.yaml")) == cfg


@pytest.mark.parametrize(
    "override, named",
    [
        ("training.lerning_rate=1", "training.lerning_rate"),  # unknown key
        ("nosuchsection.x=1", "nosuchsection"),
        ("lora.r=abc", "lora.r"),  # wrong type
        ("training.use_gpu=3", "training.use_gpu"),  # int is not bool
        ("lora.r=0", "lora.r"),  # out of range
        ("lora.dropout=1.5", "lora.dropout"),
        ("data.val_fraction=1", "data.val_fraction"),
        ("model.compute_dtype=int8", "model.compute_dtype"),  # not a choice
        ("tuning.lora_r=[8, x]", "tuning.lora_r[1]"),
        ("tuning.grace_period=9", "tuning.grace_period"),
        ("serving.port=70000", "serving.port"),
        ("training", "training"),  # not key=value
    ],
)
def test_bad_values_fail_naming_the_key(override, named):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(named)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_int_is_accepted_where_float_is_expected():
    assert load_config(None, ["training.epochs=2"]).training.epochs == 2.0
    assert parse_overrides(["a.b=1", "a.c=[1, 2]"]) == {"a": {"b": 1, "c": [1, 2]}}


def test_every_field_is_documented():
    undocumented = [key for key, _, _, doc in describe_fields() if not doc]
    assert undocumented == []
