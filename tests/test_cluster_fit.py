"""Do the shipped GPU configs fit the clusters shipped for them, and can every node reach
their storage? Checked from the YAML alone: a job that asks for more than its cluster can
ever hold waits forever without an error, and a path only the head can see breaks Ray
Train's checkpoints (or a Serve replica's adapter) on the first worker that looks.

Resources are Ray's logical ones, packed the way Ray places them: each bundle (a Train
worker, a Tune trial's driver, a Serve replica) whole on one node."""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import re
import shlex
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Optional

import pytest
import yaml

from medqa.config import Config, ServingConfig, load_config

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy/k8s"
CLUSTERS = ["cluster.yaml", "deploy/k8s/rayjob-train.yaml", "deploy/k8s/rayservice.yaml"]
GPU_JOB_CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "jobs/configs").glob("*gpu*.yaml"))
GPU_SERVE_CONFIG = "serve_configs/gpu.yaml"
# Path-like settings that are no shared storage: the API key is each node's own copy (a
# file_mount on `ray up` clusters, a mounted Secret on Kubernetes: test_deploy.py checks both),
# and a route prefix is a URL path.
NOT_STORAGE = {"api_key_file", "route_prefix"}
# What the instance types of cluster.yaml have, so a resources line cannot promise more.
INSTANCES = {"m5.xlarge": {"CPU": 4}, "m5.2xlarge": {"CPU": 8}, "g5.xlarge": {"CPU": 4, "GPU": 1},
             "g5.2xlarge": {"CPU": 8, "GPU": 1}, "g5.12xlarge": {"CPU": 48, "GPU": 4}}

Resources = dict[str, float]


# ---------------------------------------------------------------- the packer


def first_fit(bundles: list[Resources], nodes: list[Resources]) -> Optional[list[int]]:
    """The node index each bundle lands on, placing bundles in order, each whole on the first
    node with room left; None when one has nowhere to go. A placement found proves the load
    fits; first-fit in the order Ray asks (see the loads below) is also how it fails in practice."""
    free = [dict(n) for n in nodes]
    placed = []
    for bundle in bundles:
        need = {k: v for k, v in bundle.items() if v}
        for i, node in enumerate(free):
            if all(node.get(k, 0) >= v - 1e-9 for k, v in need.items()):
                for k, v in need.items():
                    node[k] -= v
                placed.append(i)
                break
        else:
            return None
    return placed


def test_first_fit_keeps_each_bundle_on_one_node():
    worker = {"CPU": 4, "GPU": 1}
    # Enough CPUs and GPUs in total, but no node holds a whole worker.
    assert first_fit([worker], [{"CPU": 2, "GPU": 1}, {"CPU": 2, "GPU": 1}]) is None
    assert first_fit([worker, worker], [{"CPU": 4, "GPU": 1}] * 2) == [0, 1]
    assert first_fit([worker] * 3, [{"CPU": 4, "GPU": 1}] * 2) is None
    # Order matters: small bundles first can leave no node whole for the big one.
    nodes = [{"CPU": 4, "GPU": 1}, {"CPU": 2}]
    assert first_fit([worker, {"CPU": 2}], nodes) == [0, 1]
    assert first_fit([{"CPU": 2}, worker], nodes) is None
    # A GPU bundle skips CPU-only nodes; zero requests need nothing; the input is untouched.
    assert first_fit([{"CPU": 1, "GPU": 1}, {"CPU": 0.5, "GPU": 0}], [{"CPU": 8}, {"CPU": 1, "GPU": 1}]) == [1, 0]
    assert nodes == [{"CPU": 4, "GPU": 1}, {"CPU": 2}]


# ---------------------------------------------------------------- what the clusters provide


@dataclasses.dataclass
class Cluster:
    name: str
    autoscaling: bool
    start: list[Resources]   # the nodes it starts with
    most: list[Resources]    # the nodes it can grow to (== start without an autoscaler)


@functools.cache
def _parsed(rel: str):
    return yaml.safe_load((REPO / rel).read_text())


def _load(rel: str):
    return copy.deepcopy(_parsed(rel))  # parsed once: the storage checks read each file often


def gpu_last(nodes: list[Resources]) -> list[Resources]:
    """Ray keeps work that needs no GPU off GPU nodes while other nodes have room (the
    scheduler's GPU avoidance, and the autoscaler's choice of node type), so CPU-only
    bundles meet the GPU-less nodes first."""
    return sorted(nodes, key=lambda n: n.get("GPU", 0) > 0)


def launcher_cluster(config: dict) -> Cluster:
    """cluster.yaml: the head plus every worker type, from min_workers up to max_workers."""
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    start, most = [dict(head["resources"])], [dict(head["resources"])]
    for name, node in types.items():
        if name != config["head_node_type"]:
            start += [dict(node["resources"])] * node.get("min_workers", 0)
            most += [dict(node["resources"])] * node["max_workers"]
    return Cluster("cluster.yaml", True, gpu_last(start), gpu_last(most))


def cpu_quantity(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_resources(group: dict) -> Resources:
    """What Ray on a KubeRay pod offers: rayStartParams num-cpus/num-gpus, else the Ray
    container's limits (requests when there are none), as KubeRay passes them to `ray start`."""
    (container,) = [c for c in group["template"]["spec"]["containers"] if c["name"].startswith("ray-")]
    res = container.get("resources", {})
    limits = {**res.get("requests", {}), **res.get("limits", {})}
    pod = {"CPU": cpu_quantity(limits.get("cpu", 0)), "GPU": float(limits.get("nvidia.com/gpu", 0))}
    params = group.get("rayStartParams", {})
    ray_sees = {"CPU": float(params.get("num-cpus", pod["CPU"])), "GPU": float(params.get("num-gpus", pod["GPU"]))}
    assert ray_sees["GPU"] <= pod["GPU"], f"{group.get('groupName', 'head')}: num-gpus beyond the pod's GPUs"
    return ray_sees


def kuberay_cluster(rel: str) -> Cluster:
    doc = _load(rel)
    spec = doc["spec"]["rayClusterConfig" if doc["kind"] == "RayService" else "rayClusterSpec"]
    autoscaling = bool(spec.get("enableInTreeAutoscaling", False))
    head = pod_resources(spec["headGroupSpec"])
    start, most = [head], [head]
    for group in spec["workerGroupSpecs"]:
        pod = pod_resources(group)
        start += [pod] * group["replicas"]
        # Without the autoscaler KubeRay keeps `replicas` pods; min/maxReplicas bound only it.
        most += [pod] * (group["maxReplicas"] if autoscaling else group["replicas"])
    return Cluster(rel, autoscaling, gpu_last(start), gpu_last(most))


def cluster(rel: str) -> Cluster:
    return launcher_cluster(_load(rel)) if rel == "cluster.yaml" else kuberay_cluster(rel)


def test_cluster_yaml_declares_what_its_instances_have():
    """The fit checks read node capacity from `resources`, so it must be explicit and true."""
    config = _load("cluster.yaml")
    for name, node in config["available_node_types"].items():
        declared, instance = node["resources"], INSTANCES[node["node_config"]["InstanceType"]]
        assert {"CPU", "GPU"} & set(declared) or name == config["head_node_type"], name
        assert all(declared.get(k, 0) <= instance.get(k, 0) for k in ("CPU", "GPU")), (name, declared, instance)
        # GPUs left undeclared would hide the node's GPUs from Ray.
        assert declared.get("GPU", 0) == instance.get("GPU", 0), name
    # Every type can be at its maximum at once.
    workers = [n for name, n in config["available_node_types"].items() if name != config["head_node_type"]]
    assert sum(n["max_workers"] for n in workers) <= config["max_workers"]


# ---------------------------------------------------------------- what the configs ask for


def worker_bundles(cfg: Config) -> list[Resources]:
    """Ray Train's workers as medqa.training.driver.build_trainer asks for them:
    ScalingConfig(num_workers, use_gpu, resources_per_worker={CPU: cpus_per_worker}). Train V2's
    controller takes no CPU and runs beside the driver (the job's entrypoint, on the head)."""
    t = cfg.training
    return [{"CPU": t.cpus_per_worker, "GPU": 1 if t.use_gpu else 0}] * t.num_workers


def tune_bundles(cfg: Config, trials: int) -> list[Resources]:
    """`trials` concurrent trials as medqa.tuning.search builds them: each trial's driver
    reserves {CPU: trial_cpus} (tune.with_resources), then its Train run its own workers.
    Tune reserves the drivers of every trial it starts before any of them asks for workers."""
    drivers = [{"CPU": cfg.tuning.trial_cpus}] * trials
    return drivers + worker_bundles(cfg) * trials


def serve_deployments(serve_config: dict) -> list[tuple[str, int, int, Resources]]:
    """(name, min replicas, max replicas, resources per replica) of every deployment. The
    config's ray_actor_options replace the code's (medqa.serving.app.build_app) whole; a
    replica without num_cpus reserves one CPU."""
    (app,) = serve_config["applications"]
    fields = {f.name for f in dataclasses.fields(ServingConfig)}
    serving = dataclasses.replace(ServingConfig(), **{k: v for k, v in app["args"].items() if k in fields})
    code = {"MedQAModel": {"num_cpus": serving.model_num_cpus, "num_gpus": serving.model_num_gpus},
            "SafetyGuard": {"num_cpus": serving.small_num_cpus},
            "MedQAIngress": {"num_cpus": serving.small_num_cpus}}
    given = {d["name"]: d for d in app.get("deployments", [])}
    assert set(given) <= set(code), set(given) - set(code)
    out = []
    for name, code_options in code.items():
        d = given.get(name, {})
        options = d.get("ray_actor_options", code_options)
        res = {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0)}
        if "num_replicas" in d:
            low = high = d["num_replicas"]
        elif "autoscaling_config" in d:
            low, high = d["autoscaling_config"].get("min_replicas", 1), d["autoscaling_config"]["max_replicas"]
        elif name == "MedQAModel":
            low, high = ((serving.num_replicas,) * 2 if serving.num_replicas
                         else (serving.min_replicas, serving.max_replicas))
        else:
            low = high = 1
        out.append((name, low, high, res))
    return out


def _count(items: list[Resources]) -> str:
    counts = Counter(tuple((k, v) for k, v in sorted(i.items()) if v) for i in items)
    return ", ".join(f"{n} x {dict(key)}" for key, n in counts.items())


def assert_fits(orders: dict[str, list[Resources]], where: Cluster) -> None:
    for label, bundles in orders.items():
        assert first_fit(bundles, where.most) is not None, (
            f"{label} does not fit {where.name}: bundles {_count(bundles)}; nodes {_count(where.most)}"
            + ("" if where.autoscaling else " (no autoscaler: it never grows past its replicas)"))


def _job_config(manifest: str) -> str:
    argv = shlex.split(_load(manifest)["spec"]["entrypoint"])
    return argv[argv.index("--config") + 1]


def _train_runs() -> list[tuple[str, str]]:
    runs = [("cluster.yaml", c) for c in GPU_JOB_CONFIGS if "tuning" not in _load(c)]
    return runs + [("deploy/k8s/rayjob-train.yaml", _job_config("deploy/k8s/rayjob-train.yaml"))]


def test_the_gpu_configs_are_covered():
    """Each GPU job config is checked as a Train run or (with a tuning section) a Tune search."""
    assert {"jobs/configs/phi2_qlora_gpu.yaml", "jobs/configs/tune_phi2_gpu.yaml"} <= set(GPU_JOB_CONFIGS)
    assert _job_config("deploy/k8s/rayjob-train.yaml") in GPU_JOB_CONFIGS
    for rel in GPU_JOB_CONFIGS:
        load_config(REPO / rel)  # the configs the checks read are ones medqa accepts


@pytest.mark.parametrize("where,config", _train_runs())
def test_training_workers_fit_the_cluster(where, config):
    cfg = load_config(REPO / config)
    assert cfg.training.use_gpu
    assert_fits({f"{config}: {cfg.training.num_workers} Train workers": worker_bundles(cfg)}, cluster(where))


@pytest.mark.parametrize("config", [c for c in GPU_JOB_CONFIGS if "tuning" in _load(c)])
def test_tune_concurrency_is_explicit_and_uses_every_gpu_the_cluster_can_grow_to(config):
    """0 means "what ray.cluster_resources() holds at start": on an autoscaling cluster
    with no GPU node up yet that is a single trial at a time, for the whole search."""
    cfg = load_config(REPO / config)
    trials = cfg.tuning.max_concurrent_trials
    assert trials > 0, f"{config}: set tuning.max_concurrent_trials explicitly"
    where = cluster("cluster.yaml")
    assert_fits({f"{config}: {trials} concurrent trials": tune_bundles(cfg, trials)}, where)
    gpus_per_trial = sum(b["GPU"] for b in worker_bundles(cfg))
    assert trials == sum(n.get("GPU", 0) for n in where.most) // gpus_per_trial, "GPUs left idle"
    assert trials <= cfg.tuning.num_samples


def _serve_loads(serve_config: dict) -> dict[str, list[Resources]]:
    """Every deployment at its minimum and at its maximum, placed in every deployment order
    (Serve starts and scales them independently)."""
    deployments = serve_deployments(serve_config)
    loads = {}
    for level, index in (("min_replicas", 1), ("max_replicas", 2)):
        for order in itertools.permutations(deployments):
            label = f"{level}, placed {' then '.join(d[0] for d in order)}"
            loads[label] = [d[3] for d in order for _ in range(d[index])]
    return loads


@pytest.mark.parametrize("where", ["cluster.yaml", "deploy/k8s/rayservice.yaml"])
def test_serve_replicas_fit_the_cluster(where):
    if where == "cluster.yaml":
        serve_config = _load(GPU_SERVE_CONFIG)
    else:
        serve_config = yaml.safe_load(_load(where)["spec"]["serveConfigV2"])
    assert_fits(_serve_loads(serve_config), cluster(where))


def test_the_rayservice_starts_with_room_for_its_minimum():
    """The first deploy should not wait for the autoscaler to bring up pods."""
    where = cluster("deploy/k8s/rayservice.yaml")
    serve_config = yaml.safe_load(_load("deploy/k8s/rayservice.yaml")["spec"]["serveConfigV2"])
    for label, bundles in _serve_loads(serve_config).items():
        if label.startswith("min_replicas"):
            assert first_fit(bundles, where.start) is not None, (label, where.start)


# ---------------------------------------------------------------- storage every node reaches


def _is_uri(value: str) -> bool:
    return "://" in value


def _leaves(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, node


STORAGE_KEYS = {"data.output_dir", "training.storage_path", "training.resume_from", "tuning.resume",
                "model.cache_dir", "applications[0].args.adapter"}


def storage_paths(rel: str) -> dict[str, str]:
    """Every storage setting of a config (the known ones, and any other absolute path) that is
    not a cloud URI. A relative path is node-local: it fails the mount checks below."""
    out = {}
    for key, value in _leaves(_load(rel)):
        if not isinstance(value, str) or _is_uri(value) or key.rsplit(".", 1)[-1] in NOT_STORAGE:
            continue
        if key in STORAGE_KEYS or value.startswith(("/", "~")):
            out[key] = value
    return out


def _storage_cases() -> list[tuple[str, str]]:
    return [(where, c) for where in CLUSTERS for c in [*GPU_JOB_CONFIGS, GPU_SERVE_CONFIG]]


def test_storage_settings_are_found():
    assert set(storage_paths("jobs/configs/phi2_qlora_gpu.yaml")) == {"data.output_dir", "training.storage_path"}
    assert "applications[0].args.adapter" in storage_paths(GPU_SERVE_CONFIG)


# cluster.yaml: an NFS (EFS) export mounted on each host, bound into the container.

SHARED_FS = {"nfs", "nfs4", "efs"}


def _shell_commands(lines: list[str]) -> list[list[str]]:
    argvs = []
    for line in lines:
        for part in re.split(r";|&&|\|\|", line):
            argv = shlex.split(part)
            while argv and argv[0] == "sudo":
                argv.pop(0)
            if argv:
                argvs.append(argv)
    return argvs


def host_mounts(commands: list[str]) -> dict[str, tuple[str, str]]:
    """target -> (filesystem type, source) of every `mount -t TYPE ... SOURCE TARGET`."""
    mounts = {}
    for argv in _shell_commands(commands):
        if argv[0] != "mount" or "-t" not in argv:
            continue
        fs = argv[argv.index("-t") + 1]
        rest, positional = argv[1:], []
        while rest:
            word = rest.pop(0)
            if word in ("-t", "-o"):
                rest.pop(0)
            elif not word.startswith("-"):
                positional.append(word)
        source, target = positional
        mounts[target.rstrip("/")] = (fs, source)
    return mounts


def bind_mounts(run_options: list[str]) -> dict[str, str]:
    """container path -> host path of every `-v host:container[:mode]` docker option."""
    binds = {}
    for option in run_options:
        argv = shlex.split(option)
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-v", "--volume"):
                host, container, *_ = value.split(":")
                binds[container.rstrip("/")] = host.rstrip("/")
    return binds


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(root)


def launcher_storage(config: dict, path: str, head: bool) -> tuple[str, str]:
    """The shared filesystem (type, source) that `path` inside a node's container lies on."""
    docker = config["docker"]
    binds = bind_mounts(docker.get("run_options", [])
                        + docker.get("head_run_options" if head else "worker_run_options", []))
    inside = [c for c in binds if _under(path, c)]
    assert inside, f"{path} is on no bind mount of the {'head' if head else 'worker'} container: {binds}"
    host_path = binds[max(inside, key=len)]
    mounts = host_mounts(config["initialization_commands"])  # run on the host, before docker
    on = [t for t in mounts if _under(host_path, t)]
    assert on, f"{path}: host path {host_path} is no mounted shared filesystem: {mounts}"
    return mounts[max(on, key=len)]


def test_cluster_yaml_nodes_all_run_the_same_mounts():
    """The checks below read the cluster-wide initialization_commands and docker options, so no
    node type may replace them."""
    for name, node in _load("cluster.yaml")["available_node_types"].items():
        assert "initialization_commands" not in node and "docker" not in node, name


# KubeRay: a ReadWriteMany claim mounted into the Ray container of every pod.


def _k8s_docs() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


@functools.cache
def claims() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _k8s_docs() if d["kind"] == "PersistentVolumeClaim"}


def _ray_groups(rel: str) -> dict[str, dict]:
    doc = _load(rel)
    spec = doc["spec"]["rayClusterConfig" if doc["kind"] == "RayService" else "rayClusterSpec"]
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def pod_storage(group: dict, path: str) -> tuple[dict, dict]:
    """(volumeMount, volume) of the Ray container's mount that holds `path`."""
    spec = group["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"].startswith("ray-")]
    mounts = [m for m in container.get("volumeMounts", []) if _under(path, m["mountPath"])]
    assert mounts, f"{path} is on no volume of {group.get('groupName', 'head')}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def shared_source(where: str, config: str, path: str) -> set:
    """What `path` is stored on, checked to be one shared filesystem on every node."""
    if where == "cluster.yaml":
        launcher = _load(where)
        sources = {launcher_storage(launcher, path, head) for head in (True, False)}
        assert len(sources) == 1, f"{path}: the head and the workers mount different file systems: {sources}"
        ((fs, source),) = sources
        assert fs in SHARED_FS and ":" in source, (path, fs, source)  # server:/export
        efs = re.fullmatch(r"fs-[0-9a-f]+\.efs\.([a-z0-9-]+)\.amazonaws\.com:/.*", source)
        assert efs is None or efs.group(1) == launcher["provider"]["region"], source  # an EFS in the nodes' region
        return sources
    sources = set()
    for group_name, group in _ray_groups(where).items():
        mount, volume = pod_storage(group, path)
        if "nfs" in volume:
            sources.add(("nfs", f"{volume['nfs']['server']}:{volume['nfs']['path']}"))
            continue
        assert "persistentVolumeClaim" in volume, (where, group_name, path, volume)
        name = volume["persistentVolumeClaim"]["claimName"]
        assert name in claims(), f"claim {name} ({where}, {group_name}) has no manifest in deploy/k8s"
        assert "ReadWriteMany" in claims()[name]["spec"]["accessModes"], name
        sources.add(("pvc", name))
    assert len(sources) == 1, f"{config}: {path} is on different volumes across {where}'s pods: {sources}"
    return sources


@pytest.mark.parametrize("where,config", _storage_cases())
def test_storage_is_shared_by_the_head_and_every_worker(where, config):
    paths = storage_paths(config)
    for key, path in paths.items():
        assert path.startswith("/"), f"{config}: {key}={path} is relative to each node's own working dir"
        shared_source(where, config, path)


def test_training_writes_its_storage_on_the_job_cluster():
    where = "deploy/k8s/rayjob-train.yaml"
    for key, path in storage_paths(_job_config(where)).items():
        for group_name, group in _ray_groups(where).items():
            mount, _ = pod_storage(group, path)
            assert not mount.get("readOnly", False), (group_name, key)


@pytest.mark.parametrize("where", CLUSTERS)
def test_serving_reads_its_adapter_from_where_training_writes(where):
    """One volume for runs and adapters: a trained adapter is served without copying it
    between stores (publish it with `cp -r <checkpoint> <adapter>` on that volume)."""
    adapter = _load(GPU_SERVE_CONFIG)["applications"][0]["args"]["adapter"]
    for config in GPU_JOB_CONFIGS:
        runs = load_config(REPO / config).training.storage_path
        if not _is_uri(runs):
            assert shared_source(where, config, adapter) == shared_source(where, config, runs), (config, adapter)
