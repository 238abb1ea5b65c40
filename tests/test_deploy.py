"""Deployment artefacts: checked against Ray's own schema and against each other,
since none of them can be exercised on a machine without a cloud or a GPU."""

import copy
import importlib
import importlib.util
import ipaddress
import re
import shlex
import sys
import tomllib
from pathlib import Path, PurePosixPath
from unittest import mock

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy/k8s"
MANIFESTS = ["rayservice.yaml", "rayjob-train.yaml"]
API_KEY_FILE = "/etc/medqa/api-key"
SECRET_ENV = ("MEDQA_API_KEY", "WANDB_API_KEY")
NAMESPACE = "medqa"  # any namespace: the manifests and the policies share it


def _pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[\[=]", d)[0]: d.split("==")[1] for d in deps if "==" in d}


def _load(path: Path):
    return yaml.safe_load(path.read_text())


def _cluster() -> dict:
    return _load(REPO / "cluster.yaml")


def _gpu_serve_config() -> dict:
    return _load(REPO / "serve_configs/gpu.yaml")


def test_every_dependency_is_pinned():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]


# --- cluster.yaml (Ray cluster launcher, AWS) ---------------------------------------------


def test_cluster_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _cluster()
    validate_config(prepare_config(copy.deepcopy(config)))

    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workerz"] = 1
    with pytest.raises(Exception, match="min_workerz"):
        validate_config(prepare_config(broken))

    broken = copy.deepcopy(config)  # provider.security_group is in the schema, typos included
    broken["provider"]["security_group"]["GroupNamez"] = broken["provider"]["security_group"].pop("GroupName")
    with pytest.raises(Exception, match="GroupNamez"):
        validate_config(prepare_config(broken))


def test_cluster_has_cpu_head_and_autoscaling_gpu_workers():
    config = _cluster()
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    assert any(w["node_config"]["InstanceType"].startswith("g5") for w in workers)
    assert all(w["min_workers"] < w["max_workers"] for w in workers)
    for local in config["file_mounts"].values():
        if not local.startswith("~/"):  # secrets come from the launcher's home, never the repo
            assert (REPO / local).exists(), local


def _ray_starts(commands: list[str]) -> list[tuple[dict[str, str], list[str]]]:
    """(env assignments, argv) of every `ray start` in a list of shell lines."""
    starts = []
    for line in commands:
        for part in re.split(r";|&&", line):
            argv = shlex.split(part)
            env = {}
            while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
                key, value = argv.pop(0).split("=", 1)
                env[key] = value
            if argv[:2] == ["ray", "start"]:
                starts.append((env, argv))
    return starts


def _token_path(config: dict) -> str:
    (path,) = [t for t, src in config["file_mounts"].items() if src == "~/.ray/auth_token"]
    return path


def test_cluster_ray_starts_use_token_auth_and_a_loopback_dashboard():
    config = _cluster()
    token_path = _token_path(config)
    head = _ray_starts(config["head_start_ray_commands"])
    workers = _ray_starts(config["worker_start_ray_commands"])
    assert len(head) == 1 and len(workers) == 1
    for env, argv in head + workers:
        assert env.get("RAY_AUTH_MODE") == "token", argv
        assert env.get("RAY_AUTH_TOKEN_PATH") == token_path, argv
        assert "RAY_AUTH_TOKEN" not in env  # the token itself never sits in the config
        assert not any("0.0.0.0" in a for a in argv), argv
    ((_, head_argv),) = head
    assert "--head" in head_argv and "--dashboard-host=127.0.0.1" in head_argv
    # Every process in the containers (drivers started from `ray attach` too) sees the same.
    options = config["docker"]["run_options"]
    assert "-e RAY_AUTH_MODE=token" in options
    assert f"-e RAY_AUTH_TOKEN_PATH={token_path}" in options


def test_cluster_copies_its_secrets_from_outside_the_repo():
    config = _cluster()
    mounts = config["file_mounts"]
    assert mounts[_token_path(config)] == "~/.ray/auth_token"  # where `ray get-auth-token --generate` writes
    # serve_configs/gpu.yaml reads its key from a file every node must have.
    args = _gpu_serve_config()["applications"][0]["args"]
    assert args["api_key_file"] in mounts
    assert mounts[args["api_key_file"]].startswith("~/")


def test_cluster_security_group_opens_only_ssh_from_the_admin_network():
    sg = _cluster()["provider"]["security_group"]
    assert sg["GroupName"]
    assert sg["IpPermissions"]
    for rule in sg["IpPermissions"]:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22), rule
        assert set(rule) <= {"IpProtocol", "FromPort", "ToPort", "IpRanges"}, rule  # no IPv6, no prefix lists
        for block in rule["IpRanges"]:
            assert ipaddress.ip_network(block["CidrIp"]).prefixlen >= 8, block  # an admin network, not the world


@pytest.fixture
def aws():
    """Ray's AWS launcher config module. boto3 is no medqa dependency: stub it when missing,
    since the functions used here make no AWS call."""
    if importlib.util.find_spec("boto3"):
        yield importlib.import_module("ray.autoscaler._private.aws.config")
        return
    stubs = ["boto3", "boto3.exceptions", "boto3.resources", "boto3.resources.base",
             "botocore", "botocore.client", "botocore.config"]
    stub = mock.MagicMock(__version__="99.0")  # config.py checks the boto3 version on import
    sys.modules.update(dict.fromkeys(stubs, stub))
    before = set(sys.modules)
    try:
        yield importlib.import_module("ray.autoscaler._private.aws.config")
    finally:  # leave no stub, and nothing imported against one, to later tests
        for module in stubs + [m for m in set(sys.modules) - before if m.startswith("ray.autoscaler._private.aws")]:
            del sys.modules[module]


def test_ray_leaves_a_prepared_security_group_alone(aws):
    """Why cluster.yaml says to create the group first: Ray writes rules only into an empty
    group, and then adds SSH from 0.0.0.0/0 next to the configured ones."""

    class Group:
        id = "sg-0123"

        def __init__(self, ip_permissions):
            self.ip_permissions = ip_permissions
            self.authorized = []

        def authorize_ingress(self, IpPermissions):
            self.authorized += IpPermissions

    config = _cluster()
    ours = config["provider"]["security_group"]["IpPermissions"]
    prepared, empty = Group(ours), Group([])
    aws._upsert_security_group_rules(config, {"head_cpu": prepared})
    aws._upsert_security_group_rules(config, {"head_cpu": empty})
    assert prepared.authorized == []
    world = [r for r in empty.authorized if {"CidrIp": "0.0.0.0/0"} in r.get("IpRanges", [])]
    assert world and all(r["FromPort"] == 22 for r in world)


def test_cluster_nodes_use_named_instance_profiles(aws):
    config = _cluster()
    arns = {}
    for name, node in config["available_node_types"].items():
        arn = node["node_config"]["IamInstanceProfile"]["Arn"]
        assert re.fullmatch(r"arn:aws:iam::\d{12}:instance-profile/[\w+=,.@-]+", arn), (name, arn)
        arns[name] = arn
    head = arns.pop(config["head_node_type"])
    assert head not in arns.values()  # the head's EC2 rights stay off the workers
    # The launcher keeps the head's profile and creates none of its own (no AWS call made).
    config["head_node"] = {}
    aws._configure_iam_role(config)
    assert config["head_node"] == {}


# --- Dockerfile -------------------------------------------------------------------------------


def _dockerfile_env() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in re.findall(r"^ENV\s+(.*)$", text, re.MULTILINE):
        env.update(w.split("=", 1) for w in shlex.split(line))
    return env


def test_dockerfile_is_multistage_pinned_and_non_root():
    text = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(froms) >= 2
    assert all(":" in image and not image.endswith(":latest") for image in froms)
    assert f"rayproject/ray:{_pins()['ray']}-" in text  # base image matches the Ray pin
    assert f"torch=={_pins()['torch']}" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    # Everything the image copies exists in the repo.
    for line in re.findall(r"^COPY\s+(.*)$", text, re.MULTILINE):
        if "--from=" not in line:  # files from the build context, not another stage
            *sources, _dest = [w for w in line.split() if not w.startswith("--")]
            assert all((REPO / src).exists() for src in sources), line


# --- KubeRay manifests ------------------------------------------------------------------------


def _manifest(name: str) -> dict:
    return _load(K8S / name)


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig" if doc["kind"] == "RayService" else "rayClusterSpec"]


def _ray_templates(doc: dict) -> dict[str, dict]:
    """Pod templates of the Ray nodes: 'head' and each worker group's name."""
    spec = _cluster_spec(doc)
    return {"head": spec["headGroupSpec"]["template"],
            **{g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]}}


def _all_templates(doc: dict) -> dict[str, dict]:
    """The Ray nodes' pod templates and, for a RayJob, the submitter's."""
    templates = _ray_templates(doc)
    if "submitterPodTemplate" in doc["spec"]:
        templates["submitter"] = doc["spec"]["submitterPodTemplate"]
    return templates


def _containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec["containers"] + spec.get("initContainers", [])


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


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
    job = _manifest("rayjob-train.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "python" and (REPO / argv[1]).exists()
    assert (REPO / argv[argv.index("--config") + 1]).exists()
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == _pins()["ray"]
    assert all(_gpu_limits(spec))
    images = _cluster_images(spec) | {_image_of(job["spec"]["submitterPodTemplate"])}
    assert images == {_cluster()["docker"]["image"]}


def test_the_rayservice_cluster_grows_with_its_replicas():
    service = _load(K8S / "rayservice.yaml")
    assert service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    groups = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    gpu_pods = sum(g["maxReplicas"] for g, gpus in zip(groups, _gpu_limits(service["spec"]["rayClusterConfig"]))
                   if gpus)
    model = next(d for d in yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["deployments"]
                 if d["name"] == "MedQAModel")
    assert gpu_pods >= model["autoscaling_config"]["max_replicas"]  # one GPU worker per model replica
    # (whether everything else fits beside them: tests/test_cluster_fit.py)


def test_kuberay_rayservice_serves_the_app():
    service = _manifest("rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_config == _gpu_serve_config()
    (app,) = serve_config["applications"]
    module, attr = app["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    from medqa.serving.app import BuildArgs

    BuildArgs.model_validate(app["args"])  # the args are ones build_app accepts
    spec = service["spec"]["rayClusterConfig"]
    assert spec["rayVersion"] == _pins()["ray"]
    assert any(_gpu_limits(spec))  # and a CPU group for the ingress and safety replicas
    assert _cluster_images(spec) == {_cluster()["docker"]["image"]}


def test_rayservice_serve_config_is_gpu_yaml_verbatim():
    """Comments included: the two copies must not drift even where YAML ignores the text."""
    text = (REPO / "serve_configs/gpu.yaml").read_text()
    body = text[text.index("proxy_location:"):]
    assert _manifest("rayservice.yaml")["spec"]["serveConfigV2"] == body


def test_gpu_serve_config_sets_the_apps_limits_and_a_proxy_backstop():
    from ray.serve.schema import ServeDeploySchema

    from medqa.serving.app import BuildArgs, resolve_settings

    config = _gpu_serve_config()
    schema = ServeDeploySchema.model_validate(config)  # Ray's own schema for `serve deploy`
    (app,) = config["applications"]
    args = app["args"]
    assert args["api_key_file"] == API_KEY_FILE
    assert args["request_timeout_s"] == 60
    assert args["max_queued_requests"] == 128
    _, serving = resolve_settings(BuildArgs.model_validate(args))  # ServingConfig checks the values
    assert (serving.api_key_file, serving.request_timeout_s, serving.max_queued_requests) == (API_KEY_FILE, 60, 128)
    assert not serving.allow_unauthenticated and not serving.allow_safety_opt_out
    # The proxy's timeout only backs the app's up: the app answers 504 first.
    proxy_timeout = schema.http_options.request_timeout_s
    assert proxy_timeout is not None and serving.request_timeout_s < proxy_timeout <= serving.request_timeout_s + 30


@pytest.mark.parametrize("name", MANIFESTS)
def test_kuberay_token_auth_on_every_container(name):
    doc = _manifest(name)
    auth = _cluster_spec(doc)["authOptions"]
    assert auth["mode"] == "token"
    secret = auth["secretName"]  # the operator authenticates its dashboard calls with it
    for group, template in _all_templates(doc).items():
        for container in template["spec"]["containers"]:
            env = _env(container)
            assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}, (group, container["name"])
            token = env["RAY_AUTH_TOKEN"]
            assert "value" not in token
            assert token["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "auth_token"}, group


def test_kuberay_clusters_have_their_own_tokens():
    secrets = {_cluster_spec(_manifest(n))["authOptions"]["secretName"] for n in MANIFESTS}
    assert len(secrets) == len(MANIFESTS)


@pytest.mark.parametrize("name", MANIFESTS)
def test_kuberay_app_keys_come_from_secrets(name):
    doc = _manifest(name)
    for group, template in _ray_templates(doc).items():
        for container in template["spec"]["containers"]:
            env = _env(container)
            for var in SECRET_ENV:
                assert "value" not in env[var], (group, var)
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert ref["name"] and ref["key"], (group, var)
            # Nothing credential-like is written into a manifest.
            for var, entry in env.items():
                if re.search(r"KEY|TOKEN|SECRET|PASSWORD", var):
                    assert "value" not in entry, (group, var)
            if doc["kind"] == "RayService":  # a serving pod without its key must not start
                assert not env["MEDQA_API_KEY"]["valueFrom"]["secretKeyRef"].get("optional", False), group


def _secret_refs(doc: dict) -> set[tuple[str, str]]:
    refs = set()
    for template in _all_templates(doc).values():
        for container in _containers(template):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                refs |= {(volume["secret"]["secretName"], item["key"]) for item in volume["secret"]["items"]}
    refs.add((_cluster_spec(doc)["authOptions"]["secretName"], "auth_token"))
    return refs


def test_secrets_example_lists_every_secret_and_holds_no_values():
    docs = list(yaml.safe_load_all((K8S / "secrets.yaml.example").read_text()))
    assert all(d["kind"] == "Secret" for d in docs)
    listed = {(d["metadata"]["name"], key) for d in docs for key in d["stringData"]}
    for name in MANIFESTS:
        assert _secret_refs(_manifest(name)) <= listed, name
    assert all(value == "" for d in docs for value in d["stringData"].values())
    # Not applied with the rest of deploy/k8s/: it would blank the real Secrets.
    assert not (K8S / "secrets.yaml").exists()


def test_rayservice_mounts_the_api_key_file_on_every_ray_container():
    doc = _manifest("rayservice.yaml")
    args = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["args"]
    key_file = PurePosixPath(args["api_key_file"])
    assert str(key_file) == API_KEY_FILE
    for group, template in _ray_templates(doc).items():  # ingress replicas can land on any node
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        (container,) = template["spec"]["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
        assert mount.get("readOnly") is True, group
        secret = volumes[mount["name"]]["secret"]
        assert [i["path"] for i in secret["items"]] == [key_file.name], group
        # Readable by the `users` group the pods run as, by nobody else.
        assert secret["defaultMode"] & 0o007 == 0 and secret["defaultMode"] & 0o040, group
        assert template["spec"]["securityContext"]["fsGroup"] == template["spec"]["securityContext"]["runAsGroup"]


def _mount_for(template: dict, path: str) -> tuple[dict, dict]:
    """The volumeMount (and its volume) of the Ray container that holds `path`."""
    (container,) = template["spec"]["containers"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = [m for m in container.get("volumeMounts", [])
              if PurePosixPath(path).is_relative_to(m["mountPath"])]
    assert mounts, f"{path} is on no volume of {container['name']}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    return mount, volumes[mount["name"]]


def test_rayservice_adapter_is_on_a_shared_volume_every_worker_mounts():
    doc = _manifest("rayservice.yaml")
    adapter = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["args"]["adapter"]
    assert "://" not in adapter  # a path, so it must be mounted
    claims = set()
    for group, template in _ray_templates(doc).items():
        mount, volume = _mount_for(template, adapter)
        assert mount.get("readOnly") is True, group
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    assert len(claims) == 1  # one shared volume, not per-node copies


def test_rayjob_data_and_checkpoints_are_on_a_shared_volume():
    doc = _manifest("rayjob-train.yaml")
    argv = shlex.split(doc["spec"]["entrypoint"])
    job = _load(REPO / argv[argv.index("--config") + 1])
    for path in (job["data"]["output_dir"], job["training"]["storage_path"]):
        if "://" in path:
            continue
        claims = {_mount_for(t, path)[1]["persistentVolumeClaim"]["claimName"] for t in _ray_templates(doc).values()}
        assert len(claims) == 1, path


@pytest.mark.parametrize("name", MANIFESTS)
def test_kuberay_containers_are_locked_down(name):
    doc = _manifest(name)
    image_env = _dockerfile_env()
    for group, template in _all_templates(doc).items():
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000, group
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, group
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        for container in _containers(template):
            where = (group, container["name"])
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert not sc.get("privileged", False), where
            assert sc["readOnlyRootFilesystem"] is True, where
            # So everything written goes to a volume: Ray's /tmp, and for the Ray nodes the
            # caches the image points at (HF, medqa) and Triton's.
            writable = ["/tmp"]
            if group != "submitter":
                writable += [image_env["HF_HOME"], image_env["MEDQA_CACHE"],
                             _env(container)["TRITON_CACHE_DIR"]["value"]]
            mounts = container.get("volumeMounts", [])
            for path in writable:
                (mount,) = [m for m in mounts if PurePosixPath(path).is_relative_to(m["mountPath"])]
                assert not mount.get("readOnly", False), (where, path)
                assert "emptyDir" in volumes[mount["name"]], (where, path)


# --- NetworkPolicy ----------------------------------------------------------------------------


def _policies() -> list[dict]:
    docs = list(yaml.safe_load_all((K8S / "networkpolicy.yaml").read_text()))
    assert all(d["apiVersion"] == "networking.k8s.io/v1" and d["kind"] == "NetworkPolicy" for d in docs)
    return docs


def _selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if not {"Exists": key in labels, "DoesNotExist": key not in labels,
                "In": labels.get(key) in values, "NotIn": labels.get(key) not in values}[op]:
            return False
    return True


def _admitted(target: dict, port: int, source: dict, source_ns: str = NAMESPACE) -> bool:
    """Whether the policies let `source` (pod labels, namespace) reach `target` (pod labels, in
    NAMESPACE) on TCP `port`, by NetworkPolicy's rules: a pod no policy selects admits anything;
    otherwise one matching rule of one selecting policy must admit it."""
    selecting = [p for p in _policies() if _selects(p["spec"]["podSelector"], target)]
    if not selecting:
        return True
    for policy in selecting:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    return True  # pod IPs are not modelled: count it as open
                ns_ok = (_selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": source_ns})
                         if "namespaceSelector" in peer else source_ns == NAMESPACE)
                pod_ok = _selects(peer["podSelector"], source) if "podSelector" in peer else True
                if ns_ok and pod_ok:
                    return True
    return False


def _ray_pods(name: str) -> dict[str, dict]:
    """The labels KubeRay gives each node's pod: the template's plus its own."""
    doc = _manifest(name)
    cluster = f"{doc['metadata']['name']}-x7k2q"  # KubeRay picks the suffix
    return {group: {**template["metadata"]["labels"], "ray.io/cluster": cluster, "ray.io/is-ray-node": "yes",
                    "ray.io/node-type": "head" if group == "head" else "worker", "ray.io/group": group}
            for group, template in _ray_templates(doc).items()}


RAY_PORTS = (6379, 8265, 10001)
OPERATOR = ({"app.kubernetes.io/name": "kuberay-operator"}, "kuberay-system")


def _policy_namespaces() -> set[str]:
    names = set()
    for policy in _policies():
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                names |= set(peer.get("namespaceSelector", {}).get("matchLabels", {}).values())
    return names


def test_network_policies_select_every_ray_pod():
    for name in MANIFESTS:
        for group, labels in _ray_pods(name).items():
            assert any(_selects(p["spec"]["podSelector"], labels) for p in _policies()), (name, group)
    # The selectors need KubeRay's own label: a pod that only copies ours is no Ray node.
    for policy in _policies():
        exprs = policy["spec"]["podSelector"]["matchExpressions"]
        assert {"key": "ray.io/cluster", "operator": "Exists"} in exprs


@pytest.mark.parametrize("name", MANIFESTS)
def test_exposed_dashboard_is_fenced_to_the_ray_cluster(name):
    doc = _manifest(name)
    assert _cluster_spec(doc)["headGroupSpec"]["rayStartParams"].get("dashboard-host") == "0.0.0.0"
    pods = _ray_pods(name)
    head, peers = pods["head"], [labels for group, labels in pods.items() if group != "head"]
    other = _ray_pods(next(n for n in MANIFESTS if n != name))["head"]
    stranger = {}  # any other pod in the namespace
    impostor = {k: v for k, v in head.items() if k != "ray.io/cluster"}  # our labels, not a Ray node
    for port in (*RAY_PORTS, 8000, 43_117):  # 43117: one of the ports Ray picks at run time
        for peer in peers:
            assert _admitted(head, port, peer), (port, peer)
            assert _admitted(peer, port, head), (port, peer)
        assert not _admitted(head, port, stranger), port
        assert not _admitted(head, port, impostor), port
        assert not _admitted(head, port, other), port  # the other Ray cluster
        assert not _admitted(head, port, head, source_ns="elsewhere"), port
        for ns in _policy_namespaces():  # a namespace named in a rule admits only that rule's pods
            assert not _admitted(head, port, stranger, source_ns=ns) or port == 8000, (port, ns)
    # The operator drives the cluster through the dashboard, and only there.
    assert _admitted(head, 8265, *OPERATOR)
    assert not any(_admitted(head, port, *OPERATOR) for port in (6379, 10001))


def test_rayjob_submitter_reaches_only_the_dashboard():
    doc = _manifest("rayjob-train.yaml")
    head = _ray_pods("rayjob-train.yaml")["head"]
    submitter = doc["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    assert _admitted(head, 8265, submitter)
    assert not any(_admitted(head, port, submitter) for port in (6379, 10001))


def test_serve_port_admits_the_serving_clients_only():
    pods = _ray_pods("rayservice.yaml")
    clients = [({"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx"),
               ({"medqa.io/serve-client": "true"}, NAMESPACE)]
    for group, labels in pods.items():  # every node runs a proxy
        for client in clients:
            assert _admitted(labels, 8000, *client), (group, client)
            assert not any(_admitted(labels, port, *client) for port in RAY_PORTS), (group, client)
        assert not _admitted(labels, 8000, {}), group
        assert not _admitted(labels, 8000, {"medqa.io/serve-client": "true"}, source_ns="elsewhere"), group
    # The training cluster serves nothing.
    assert not any(_admitted(labels, 8000, *client) for labels in _ray_pods("rayjob-train.yaml").values()
                   for client in clients)
