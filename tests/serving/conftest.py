"""One real Serve application on 127.0.0.1 (tiny model) shared by the serving and UI tests."""

from __future__ import annotations

import os

import pytest

from serving_helpers import TEST_ARGS, free_port, wait_healthy


@pytest.fixture(scope="session")
def serve_url(ray_session, tiny_model_path) -> str:
    from ray import serve

    from medqa.serving.app import BuildArgs, build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    extra = {"validator": os.environ["MEDQA_TEST_VALIDATOR"]} if os.environ.get("MEDQA_TEST_VALIDATOR") else {}
    serve.run(build_app(BuildArgs(**TEST_ARGS, **extra)), name="medqa", route_prefix="/", blocking=False)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    yield url
    serve.shutdown()
