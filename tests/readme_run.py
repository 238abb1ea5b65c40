"""Run every command in the README, in order, as written (`make docs-check`).

    .venv/bin/python tests/readme_run.py [--only medqa] [--log runs/readme-check]

`tests/test_readme.py` checks each line against the real parser, files and
routes in every `make test`; this runs them for real (about 20 minutes on 2
cores, so not in `make test`). Each line runs under bash from the repository
root with `.venv/bin` first on PATH (what `source .venv/bin/activate` does).

- Servers (`serve run`, `medqa ui`) start in the background; the next lines run
  once they answer, and they are stopped with Ctrl-C (SIGINT) at the end of
  their block, as a person would.
- `curl` lines must return JSON without an `error` key.
- `make demo` / `make test` are the two commands CI and `make demo` run; cloud
  lines (`docker`, `ray up`, `kubectl`, `serve deploy`) need an account and are
  schema-checked by tests/test_deploy.py. Both are listed as skipped.

Prints one line per command and a closing 'N passed, N failed' line; exits 1 on
any failure. Each command's output goes to `--log`/NN.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_readme import CLOUD_PREFIXES, REPO, bash_blocks  # noqa: E402

# Long-running foreground commands -> the URL that answers once they are up.
SERVERS = {"serve run": "http://127.0.0.1:8000/health", "medqa ui": "http://127.0.0.1:7860/"}
TIMEOUT_S = 1800


def skip_reason(line: str) -> str | None:
    if line.startswith("make "):
        return "one of the two commands (run by CI and by `make demo` itself)"
    if line.startswith(CLOUD_PREFIXES) or "<head>" in line:
        return "cloud (needs an account; schema-checked by tests/test_deploy.py)"
    if line == "source .venv/bin/activate":
        return "applied: .venv/bin first on PATH"
    return None


def environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(REPO / ".venv")
    return env


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as in a terminal; kill the group if it does not stop."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def check_output(line: str, stdout: str) -> None:
    if line.startswith("curl"):
        body = json.loads(stdout)
        if isinstance(body, dict) and "error" in body:
            raise RuntimeError(f"error response: {body['error']}")


def run_block(commands: list[str], env: dict, log_dir: Path, counter: list[int], only: str | None) -> list[tuple]:
    results, servers = [], []
    try:
        for line in commands:
            counter[0] += 1
            log = log_dir / f"{counter[0]:02d}.log"
            reason = skip_reason(line) or (None if only is None or line.startswith(only) else f"not --only {only}")
            if reason:
                results.append((line, "skipped", reason))
                continue
            start = time.monotonic()
            try:
                server = next((url for prefix, url in SERVERS.items() if line.startswith(prefix)), None)
                with log.open("w") as out:
                    if server:
                        proc = subprocess.Popen(["bash", "-c", line], cwd=REPO, env=env, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)
                        servers.append(proc)
                        wait_until_up(server, proc)
                    else:
                        done = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True,
                                              text=True, timeout=TIMEOUT_S)
                        out.write(done.stdout + done.stderr)
                        if done.returncode:
                            raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
                        check_output(line, done.stdout)
                results.append((line, "passed", f"{time.monotonic() - start:.0f} s"))
            except Exception as err:  # noqa: BLE001 - reported per command
                results.append((line, "failed", f"{err} (log: {log})"))
    finally:
        for proc in reversed(servers):
            stop(proc)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only commands starting with this (e.g. 'medqa safety')")
    parser.add_argument("--log", default="runs/readme-check", help="folder for each command's output")
    args = parser.parse_args()
    log_dir = REPO / args.log
    log_dir.mkdir(parents=True, exist_ok=True)
    env, counter, results = environment(), [0], []
    for commands in bash_blocks():
        for line, status, detail in run_block(commands, env, log_dir, counter, args.only):
            print(f"{status:8} {line[:90]}  [{detail}]", flush=True)
            results.append(status)
    print(f"{results.count('passed')} passed, {results.count('failed')} failed, {results.count('skipped')} skipped")
    return 1 if "failed" in results else 0


if __name__ == "__main__":
    raise SystemExit(main())
