"""One real Serve application on 127.0.0.1 (tiny model) shared by the serving and UI tests."""

from __future__ import annotations

import pytest

from serving_helpers import start_shared_app, stop_shared_app


@pytest.fixture(scope="session")
def serve_url(ray_session, tiny_model_path) -> str:
    yield start_shared_app()
    stop_shared_app()
