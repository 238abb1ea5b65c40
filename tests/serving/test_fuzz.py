"""Malformed and hostile input generated from the app's own OpenAPI spec never gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from medqa.serving.ingress import app

pytestmark = pytest.mark.ray

# The spec FastAPI derives from the routes: the same document the live app serves at /openapi.json.
schema = schemathesis.openapi.from_dict(app.openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True)


def test_the_served_spec_is_the_one_fuzzed(serve_url):
    import requests

    served = requests.get(serve_url + "/openapi.json", timeout=30).json()
    assert served["paths"].keys() == app.openapi()["paths"].keys()
    assert {"/health", "/generate", "/v1/mcq", "/v1/chat/completions"} <= served["paths"].keys()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, serve_url):
    response = case.call(base_url=serve_url, timeout=60)
    assert response.status_code < 500, (case.body, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert "error" in body and "detail" not in body, response.text[:500]
    case.validate_response(response, checks=[not_a_server_error])
