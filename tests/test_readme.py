"""The README's commands are real: every shell line in it is checked here.

`medqa` lines must parse with the real argument parser and name files that
exist; job, Serve, cluster and Kubernetes lines must name real files and real
endpoints. The configuration reference must equal the one generated from the
dataclasses.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from medqa.cli import build_parser
from medqa.config import reference_markdown

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
CLOUD_PREFIXES = ("docker build", "ray up", "ray down", "ray dashboard", "kubectl apply", "serve deploy")


def bash_blocks(text: str = README) -> list[list[str]]:
    """The README's ```bash blocks as lists of commands (continuations joined, comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.replace("\\\n", " ").splitlines()]
        out.append([line for line in lines if line and not line.startswith("#")])
    return out


def shell_lines(text: str = README) -> list[str]:
    return [line for block in bash_blocks(text) for line in block]


def local_paths(argv: list[str]) -> list[str]:
    """Arguments that look like repository files (configs, jobs, manifests)."""
    return [a for a in argv if re.match(r"^(jobs|serve_configs|deploy|medqa)/|^cluster\.yaml$", a)]


def _route_exists(url: str) -> bool:
    from medqa.serving.ingress import app

    paths = app.openapi()["paths"]
    return url.split("127.0.0.1:8000", 1)[1] in paths


def check_line(line: str) -> str:
    """Raise if the README line is not a real command; return its kind."""
    argv = shlex.split(line)
    while argv and re.match(r"^[A-Z_]+=", argv[0]):  # leading environment assignments
        argv = argv[1:]
    for path in local_paths(argv):
        assert (REPO / path).exists(), f"{line}: {path} does not exist"
    if argv[:2] == ["source", ".venv/bin/activate"] or argv[0] == "make":
        return "setup"
    if argv[0] == "medqa":
        build_parser().parse_args(argv[1:])  # SystemExit on a wrong flag or command
        return "medqa"
    if shlex.join(argv).startswith(CLOUD_PREFIXES):
        return "cloud"
    if argv[:3] == ["ray", "job", "submit"]:
        entry = argv[argv.index("--") + 1:]
        assert entry[0] == "python" and (REPO / entry[1]).exists()
        return "job"
    if argv[:2] in (["ray", "start"], ["ray", "stop"]):
        return "ray"
    if argv[:2] == ["serve", "run"]:
        config = yaml.safe_load((REPO / argv[2]).read_text())
        assert config["applications"][0]["import_path"] == "medqa.serving.app:build_app"
        return "serve"
    if argv[0].endswith("python") and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        spec = importlib.util.spec_from_file_location("readme_benchmark", REPO / argv[1])
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        script.parse_args(argv[2:])  # SystemExit on a wrong flag
        return "benchmark"
    if argv[0] == "curl":
        url = next(a for a in argv if a.startswith("http://"))
        assert _route_exists(url), url
        return "http"
    raise AssertionError(f"README command of an unknown kind (add a check for it): {line}")


def test_readme_opens_with_the_two_commands():
    first_block = shell_lines()[:2]
    assert [line.split()[:2] for line in first_block] == [["make", "demo"], ["make", "test"]]
    assert "not for clinical use" in README.lower()


@pytest.mark.parametrize("line", shell_lines())
def test_readme_command_is_real(line):
    check_line(line)


def test_unknown_flags_are_caught():
    with pytest.raises(SystemExit):
        check_line("medqa train --no-such-flag")
    with pytest.raises(AssertionError):
        check_line("medqa train --config jobs/configs/missing.yaml")


def test_configuration_reference_is_generated_from_the_dataclasses():
    section = README.split("<!-- config-reference:start -->")[1].split("<!-- config-reference:end -->")[0]
    assert section.strip() == reference_markdown().strip(), "run `medqa config --reference` and paste it into README.md"


def test_readme_safety_commands_run_as_written(tmp_path):
    """The fast README lines run for real here; `make docs-check` runs all of them."""
    import readme_run

    lines = [line for line in shell_lines() if line.startswith("medqa safety")]
    results = readme_run.run_block(lines, readme_run.environment(), tmp_path, [0], None)
    assert len(lines) >= 2 and [status for _, status, _ in results] == ["passed"] * len(lines), results
    at = next(i for i, line in enumerate(lines) if line.startswith("medqa safety interactions")) + 1
    interactions = json.loads((tmp_path / f"{at:02d}.log").read_text().splitlines()[0])  # stdout comes first
    assert {frozenset((p["drug_a"], p["drug_b"])) for p in interactions} >= {frozenset(("warfarin", "ibuprofen"))}
