"""The operator's limits: sizes are 413, counts and settings beyond the server's 422, with the numbers."""

from __future__ import annotations

import pytest

from medqa.config import ConfigError, ServingConfig
from medqa.serving import limits
from medqa.serving.errors import ApiError

SERVING = ServingConfig(max_question_chars=100, max_option_chars=10, max_messages=3, max_stop_sequences=2,
                        max_new_tokens=50)


def status_of(check, *args) -> int | None:
    try:
        check(SERVING, *args)
    except ApiError as err:
        assert any(ch.isdigit() for ch in err.message), err.message  # the limit is named
        return err.status
    return None


def test_sizes_and_counts():
    assert status_of(limits.check_text, "x" * 100) is None
    assert status_of(limits.check_text, "x" * 101) == 413
    assert status_of(limits.check_options, ["a" * 10] * 4) is None
    assert status_of(limits.check_options, ["a", "b", "c" * 11, "d"]) == 413
    assert status_of(limits.check_generation, 50, ["a", "b"], "max_length") is None
    assert status_of(limits.check_generation, 51, [], "max_length") == 422
    assert status_of(limits.check_generation, 10, ["a", "b", "c"], "max_length") == 422
    assert status_of(limits.check_generation, 10, ["s" * 101], "max_length") == 413
    turn = {"role": "user", "content": "hi"}
    assert status_of(limits.check_messages, [turn] * 3) is None
    assert status_of(limits.check_messages, [turn] * 4) == 422
    assert status_of(limits.check_messages, [turn, {"role": "user", "content": "x" * 101}]) == 413


@pytest.mark.parametrize("override", [{"max_body_bytes": 0}, {"request_timeout_s": 0}, {"max_queued_requests": 0},
                                      {"retry_after_s": 0}, {"look_back_period_s": 0}, {"num_replicas": 0}])
def test_limits_are_checked_when_configured(override):
    with pytest.raises(ConfigError, match=next(iter(override))):
        ServingConfig(**override)
