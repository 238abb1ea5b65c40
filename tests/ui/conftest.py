"""The UI tests drive the same shared Serve app as tests/serving (deployed once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import free_port, start_shared_app, stop_shared_app  # noqa: E402


@pytest.fixture(scope="session")
def serve_url(ray_session, tiny_model_path) -> str:
    yield start_shared_app()
    stop_shared_app()


@pytest.fixture
def ui_url(serve_url):
    from medqa.ui.gradio_app import launch

    port = free_port()
    demo = launch(serve_url, port=port, block=False)
    yield f"http://127.0.0.1:{port}"
    demo.close()
