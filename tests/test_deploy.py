"""Deployment artefacts: checked against Ray's own schema and against each other,
since none of them can be exercised on a machine without a cloud or a GPU."""

import copy
import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[\[=]", d)[0]: d.split("==")[1] for d in deps if "==" in d}


def test_every_dependency_is_pinned():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]


def test_cluster_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))

    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workerz"] = 1
    with pytest.raises(Exception, match="min_workerz"):
        validate_config(prepare_config(broken))


def test_cluster_has_cpu_head_and_autoscaling_gpu_workers():
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    assert any(w["node_config"]["InstanceType"].startswith("g5") for w in workers)
    assert all(w["min_workers"] < w["max_workers"] for w in workers)
    for local in config["file_mounts"].values():
        assert (REPO / local).exists(), local


def test_dockerfile_is_multistage_pinned_and_non_root():
    text = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2
    assert all(":" in image and not image.endswith(":latest") for image in froms)
    assert f"rayproject/ray:{_pins()['ray']}-" in text  # base image matches the Ray pin
    assert f"torch=={_pins()['torch']}" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    # Everything the image copies exists in the repo.
    for line in re.findall(r"^COPY\s+(.*)$", text, re.M):
        if "--from=" not in line:  # files from the build context, not another stage
            *sources, _dest = [w for w in line.split() if not w.startswith("--")]
            assert all((REPO / src).exists() for src in sources), line


def _image_of(pod_template: dict) -> str:
    return pod_template["spec"]["containers"][0]["image"]


def _cluster_images(cluster_spec: dict) -> set[str]:
    images = {_image_of(cluster_spec["headGroupSpec"]["template"])}
    images |= {_image_of(g["template"]) for g in cluster_spec["workerGroupSpecs"]}
    return images


def _gpu_limits(cluster_spec: dict) -> list[str]:
    return [
        g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
        for g in cluster_spec["workerGroupSpecs"]
    ]


def test_kuberay_rayjob_trains_with_a_real_entrypoint():
    job = yaml.safe_load((REPO / "deploy/k8s/rayjob-train.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "python" and (REPO / argv[1]).exists()
    assert (REPO / argv[argv.index("--config") + 1]).exists()
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == _pins()["ray"]
    assert all(_gpu_limits(spec))
    assert _cluster_images(spec) == {yaml.safe_load((REPO / "cluster.yaml").read_text())["docker"]["image"]}


def test_kuberay_rayservice_serves_the_app():
    service = yaml.safe_load((REPO / "deploy/k8s/rayservice.yaml").read_text())
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_config == yaml.safe_load((REPO / "serve_configs/gpu.yaml").read_text())
    (app,) = serve_config["applications"]
    module, attr = app["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    from medqa.serving.app import BuildArgs

    BuildArgs.model_validate(app["args"])  # the args are ones build_app accepts
    spec = service["spec"]["rayClusterConfig"]
    assert spec["rayVersion"] == _pins()["ray"]
    assert all(_gpu_limits(spec))
