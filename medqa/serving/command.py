"""The `medqa serve` command's core: typed settings in; the app deployed (a Serve config's
applications, or one app built from build args), served in the foreground, shut down cleanly.
`medqa serve` calls `run_serve`; benchmarks/gpu_smoke.py deploys through `plan`, `deploy` and
`wait_running` as it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class ServeSettings:
    """One `medqa serve` (its flags; their help is in `serving/cli.py`)."""

    config: Optional[str] = None  # a Serve config (with `applications:`) or a medqa config
    overrides: dict = field(default_factory=dict)  # build args (BuildArgs fields)
    host: Optional[str] = None  # default: the config's, else 127.0.0.1
    port: Optional[int] = None  # default: the config's, else 8000
    address: Optional[str] = None  # default: $RAY_ADDRESS, else a new local Ray
    timeout: float = 600.0  # seconds to wait for RUNNING


def parse_adapters(items: list[str]) -> dict[str, str]:
    """`--adapter NAME=DIR` flags → `{name: dir}` (names are checked with the config)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--adapter looks like NAME=DIR, got {item!r}")
        out[name.strip()] = path.strip()
    return out


def parse_build_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"overrides look like key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def plan(config_path: str | None, overrides: dict, host: str | None, port: int | None) -> dict:
    """What to run: a Serve deploy schema dict, or build args for one app (pure)."""
    import yaml

    from medqa.config import load_config

    raw = yaml.safe_load(open(config_path)) if config_path else None
    if isinstance(raw, dict) and "applications" in raw:
        http = dict(raw.get("http_options") or {})
        http.setdefault("host", "127.0.0.1")
        http.setdefault("port", 8000)
        http.update({k: v for k, v in (("host", host), ("port", port)) if v is not None})
        apps = [dict(a) for a in raw["applications"]]
        if overrides:
            given = dict(apps[0].get("args") or {})
            if "adapters" in overrides:  # `--adapter` adds to the app's adapters
                overrides = {**overrides, "adapters": {**(given.get("adapters") or {}), **overrides["adapters"]}}
            apps[0]["args"] = {**given, **overrides}
        return {"kind": "deploy", "schema": {**raw, "http_options": http, "applications": apps}}
    serving = load_config(config_path).serving
    args = {**({"config": config_path} if config_path else {}), **overrides}
    return {"kind": "build", "args": args,
            "http_options": {"host": host or serving.host, "port": port or serving.port}}


def check_build(args: dict) -> None:
    """One app's build args, config and calibration file checked before Ray starts: a ConfigError
    (or pydantic's ValueError) names what is wrong. A Serve config's apps are built where they are
    deployed; their errors come back through `wait_running`."""
    from medqa.serving.app import BuildArgs, calibrations, check_adapters, resolve_settings

    serving = resolve_settings(BuildArgs.model_validate(args))[1]
    check_adapters(serving)
    calibrations(serving)


def run_serve(settings: ServeSettings) -> int:
    """Deploy, wait until RUNNING, serve until Ctrl-C or SIGTERM, then shut Serve and Ray down; the exit code."""
    import signal
    import time

    import ray
    from ray import serve

    from medqa import runtime
    from medqa.console import emit_json, err

    s = settings
    what = plan(s.config, dict(s.overrides), s.host, s.port)
    if what["kind"] == "build":
        check_build(what["args"])
    http = what["schema"]["http_options"] if what["kind"] == "deploy" else what["http_options"]
    url = f"http://{http['host']}:{http['port']}"

    def stop(signum, frame):  # SIGTERM behaves like Ctrl-C: unwind into the finally below
        raise KeyboardInterrupt

    runtime.connect(address=s.address)
    signal.signal(signal.SIGTERM, stop)  # after ray.init, which installs its own fatal-signal handler
    started, status = time.time(), "stopped"
    try:
        names = deploy(what, http)
        wait_running(names, s.timeout)
        err.print(f"[green]medqa is serving at {url}[/] (docs at {url}/docs); Ctrl-C to stop")
        emit_json({"url": url, "applications": names, "status": "RUNNING"})
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        err.print("shutting down Serve and Ray ...")
    except (RuntimeError, TimeoutError) as failure:
        err.print(f"[red]medqa serve: {failure}[/]")
        status = "failed"
    finally:
        serve.shutdown()
        ray.shutdown()
    emit_json({"url": url, "status": status, "uptime_s": round(time.time() - started, 1)})
    return 0 if status == "stopped" else 1


def deploy(what: dict, http: dict) -> list[str]:
    """Start Serve and deploy `plan`'s answer without waiting; the application names."""
    from ray import serve

    if what["kind"] == "deploy":
        from ray.serve.schema import ServeDeploySchema

        from medqa.runtime import private

        schema = ServeDeploySchema.model_validate(what["schema"])
        client = private.serve_start(http, schema.proxy_location)
        client.deploy_apps(schema, _blocking=False)  # exactly what `serve run config.yaml` does
        return [a.name for a in schema.applications]
    from medqa.serving.app import BuildArgs, build_app

    serve.start(http_options=http)
    serve.run(build_app(BuildArgs.model_validate(what["args"])), name="medqa", route_prefix="/", blocking=False)
    return ["medqa"]


def wait_running(names: list[str], timeout: float) -> None:
    """Until every named application is RUNNING; a failed deployment raises with Serve's message."""
    import time

    from ray import serve

    deadline = time.time() + timeout
    while time.time() < deadline:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "NOT_STARTED" for n in names}
        failed = {n: apps[n].message for n, s in states.items() if s in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            raise RuntimeError(f"deployment failed: {failed}")
        if all(s == "RUNNING" for s in states.values()):
            return
        time.sleep(1)
    raise TimeoutError(f"applications {names} not RUNNING after {timeout:.0f} s")
