"""Serving: the Ray Serve application -- an HTTP ingress, a model deployment and a safety
deployment composed so that every answer passes the safety graph -- built from one
`ServingConfig` (`app.py`), run by `medqa serve`, `serve run` and `serve deploy`.

- `ingress.py` -- the FastAPI endpoints; `gate.py`, `limits.py`, `schemas.py`, `errors.py` --
  what a request meets first (key, size, limits, schema) and the JSON error contract;
- `model.py` (+ `batching.py`) -- one model copy behind `@serve.batch`; `guard.py` -- the
  safety checks in replicas of their own;
- `screening.py` (what text is screened), `verdicts.py` (what the reports decide),
  `messages.py` (what people read) -- the pure policy in between; `calibrated.py` -- which
  calibration the model serves and its answer sets for `/v1/mcq`.

May import: config, console, data, evaluation (`calibration`, `runner.score_rotated`), modeling, runtime, safety, ray.
"""
