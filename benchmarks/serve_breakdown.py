"""Where a /v1/mcq request's time goes at concurrency 1 (SmolLM2, one model replica with 2 CPUs).

    .venv/bin/python benchmarks/serve_breakdown.py
    RAY_worker_niceness=0 .venv/bin/python benchmarks/serve_breakdown.py   # Ray workers at normal priority

Prints p50 over 20 real dev questions of: a handle call straight to the model
deployment (and the replica's own compute time for it), HTTP /v1/mcq through the
whole graph (and the server-side time), and the same scorer in this process with
the Serve app idle beside it, on the main thread and on a worker thread.
"""

from __future__ import annotations

import json
import threading

import requests

from serve import load_questions, percentile, timed  # benchmarks/serve.py: same questions, same helpers

PORT = 8011


def p50(values: list[float]) -> float:
    return round(percentile(values, 50), 1)


def main() -> None:
    import ray
    import torch
    from ray import serve

    from medqa.config import ModelConfig
    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.scoring import score_records
    from medqa.serving.app import BuildArgs, build_app

    questions = load_questions(20)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(build_app(BuildArgs(model="smollm2-135m", num_replicas=1, model_num_cpus=2, small_num_cpus=0.25,
                                  max_batch_size=16, max_ongoing_requests=64)), name="medqa", route_prefix="/")
    handle, session, report = serve.get_deployment_handle("MedQAModel", app_name="medqa"), requests.Session(), {}
    for q in questions[:3]:
        handle.score.remote(q).result()  # warm-up
    compute = []
    report["handle_ms"] = p50(timed(lambda q: compute.append(handle.score.remote(q).result()["compute_ms"]), questions))
    report["replica_compute_ms"] = p50(compute)
    server = []
    report["http_mcq_ms"] = p50(timed(lambda q: server.append(
        session.post(f"http://127.0.0.1:{PORT}/v1/mcq", json=q).json()["inference_time_ms"]), questions))
    report["http_server_side_ms"] = p50(server)

    torch.set_num_threads(2)
    cfg = ModelConfig(name="smollm2-135m", load_in_4bit=False)
    model, tok = load_model(cfg).eval(), load_tokenizer(cfg)
    score = lambda q: score_records(model, tok, [MCQRecord(**q)], batch_size=1)  # noqa: E731
    score(questions[0])
    report["driver_main_thread_ms"] = p50(timed(score, questions))
    on_thread: list = []
    worker = threading.Thread(target=lambda: on_thread.extend(timed(score, questions)))
    worker.start()
    worker.join()
    report["driver_worker_thread_ms"] = p50(on_thread)
    serve.shutdown()
    ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
