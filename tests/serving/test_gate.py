"""The gate's pure rules: request ids, which keys match, where the key comes from, who may run without one."""

from __future__ import annotations

import pytest

from medqa.config import ServingConfig
from medqa.serving.gate import is_loopback, key_matches, read_api_key, refuse_open_server, request_id


@pytest.mark.parametrize("header", ["abc-123", "client.42:a_b", "x" * 64])
def test_plain_request_ids_are_kept(header):
    assert request_id(header) == header


@pytest.mark.parametrize("header", [None, "", "a b", "id decision=answer", "x" * 65, "a\tb", "ünï", "a\u200bb", "{}"])
def test_other_request_ids_are_replaced(header):
    rid = request_id(header)
    assert rid != header and len(rid) == 32 and rid.isalnum()


def test_the_key_comes_from_the_secret_file_first(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("  from-file\n")
    serving = ServingConfig(api_key_file=str(secret))
    assert read_api_key(serving, {"MEDQA_API_KEY": "from-env"}) == "from-file"
    assert read_api_key(ServingConfig(), {"MEDQA_API_KEY": "from-env"}) == "from-env"
    assert read_api_key(ServingConfig(api_key_env="OTHER"), {"OTHER": " k "}) == "k"
    assert read_api_key(ServingConfig(), {}) is None
    assert read_api_key(ServingConfig(), {"MEDQA_API_KEY": "  "}) is None  # blank is no key, not an empty key


def test_a_missing_or_empty_secret_file_stops_the_server(tmp_path):
    with pytest.raises(RuntimeError, match="does not exist"):
        read_api_key(ServingConfig(api_key_file=str(tmp_path / "missing")), {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(RuntimeError, match="is empty"):
        read_api_key(ServingConfig(api_key_file=str(tmp_path / "empty")), {})


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
                                            ("medqa.example.org", False), ("", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_server_beyond_loopback_needs_a_key_or_the_operators_consent():
    refuse_open_server(ServingConfig(), "127.0.0.1", None)
    refuse_open_server(ServingConfig(), "0.0.0.0", "a-key")
    refuse_open_server(ServingConfig(allow_unauthenticated=True), "0.0.0.0", None)
    with pytest.raises(RuntimeError, match="allow_unauthenticated"):
        refuse_open_server(ServingConfig(), "0.0.0.0", None)


@pytest.mark.parametrize(
    "expected, auth, x_key, ok",
    [(None, None, None, True), ("k1", None, None, False), ("k1", "Bearer k1", None, True),
     ("k1", "bearer k1", None, True), ("k1", "Bearer k2", None, False), ("k1", None, "k1", True),
     ("k1", "Basic k1", None, False)],
)
def test_api_key(expected, auth, x_key, ok):
    assert key_matches(expected, auth, x_key) is ok
