"""Helpers shared by the serving and UI tests: a free port, health polling, extra apps."""

from __future__ import annotations

import socket
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 180.0) -> dict:
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            r = requests.get(f"{url}/health", timeout=10)
            if r.status_code == 200:
                return r.json()
            last = r.text
        except requests.RequestException as err:
            last = repr(err)
        time.sleep(0.5)
    raise TimeoutError(f"{url} never became healthy: {last}")


OPTIONS = ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]
"""The four options of the MCQ requests the serving tests send."""


# The test app: two model replicas (the replica-kill test needs a survivor) with a
# generous batch wait so concurrent callers really share batches; small CPU
# reservations so a second app fits beside it.
TEST_ARGS = dict(model="tiny-random", num_replicas=2, max_batch_size=16, max_ongoing_requests=64,
                 batch_wait_timeout_s=0.1, model_num_cpus=0.5, small_num_cpus=0.1, max_question_chars=2000,
                 max_new_tokens=64)


def make_calibration(temperature: float = 2.0, threshold: float = 1.0, subjects: dict | None = None,
                     permutations: int = 4, alpha: float = 0.1):
    """A calibration artefact as `medqa calibrate` writes it, with chosen numbers."""
    from medqa.evaluation.calibration import Calibration, CalibrationData, Conformal

    subjects = subjects or {}
    return Calibration(temperature=temperature, permutations=permutations,
                       conformal=Conformal(alpha=alpha, threshold=threshold, subject_thresholds=subjects,
                                           subject_rows={s: 50 for s in subjects}, min_rows_per_subject=40,
                                           rows=100),
                       data=CalibrationData(rows=100, source="test"))


def calibrated(per_rotation_probs: list, per_rotation_options: list, temperature: float):
    """Calibrated probabilities written out (numpy): each option's probability averaged over the
    rotations by its text, then temperature-scaled (softmax(log p / T) = p^(1/T), normalised)."""
    import numpy as np

    original = per_rotation_options[0]
    mean = np.mean([[probs[options.index(text)] for text in original]
                    for probs, options in zip(per_rotation_probs, per_rotation_options)], axis=0)
    scaled = mean ** (1.0 / temperature)
    return scaled / scaled.sum()


# The operator app's calibration: the pooled threshold 1.0 admits every option, Anatomy's 0.0
# only the top one; T = 2 over all 4 rotations.
OPERATOR_CALIBRATION = dict(temperature=2.0, threshold=1.0, subjects={"Anatomy": 0.0}, permutations=4)


def deploy_extra(base_url: str, name: str, **overrides) -> str:
    """A second application beside the shared one (same Serve instance); returns its URL."""
    from ray import serve

    from medqa.serving.app import BuildArgs, build_app

    serve.run(build_app(BuildArgs(**{**TEST_ARGS, **overrides})), name=name, route_prefix=f"/{name}",
              blocking=False)
    url = f"{base_url}/{name}"
    wait_healthy(url)
    return url


_shared: dict = {}


def start_shared_app() -> str:
    """The shared test app, deployed once per session whichever test directory asks first."""
    if "url" not in _shared:
        from ray import serve

        from medqa.serving.app import BuildArgs, build_app

        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(BuildArgs(**TEST_ARGS)), name="medqa", route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        _shared["url"] = url
    return _shared["url"]


def stop_shared_app() -> None:
    if _shared.pop("url", None):
        from ray import serve

        serve.shutdown()


def model_stats(app_name: str = "medqa", calls: int = 16) -> dict:
    """Batch sizes seen, per model replica (the handle spreads the calls over the replicas)."""
    from ray import serve

    handle, stats = serve.get_deployment_handle("MedQAModel", app_name=app_name), {}
    for _ in range(calls):
        one = handle.stats.remote().result(timeout_s=30)
        stats[one["replica"]] = one
    return stats


def max_batch(stats: dict, kind: str) -> int:
    return max((size for one in stats.values() for size in one[kind]), default=0)
