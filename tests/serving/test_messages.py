"""The texts people read in place of an answer or beside it."""

from __future__ import annotations

from medqa.serving import messages
from medqa.serving.verdicts import normalise_report


def test_refusal_gives_a_reason():
    report = normalise_report({"categories": ["harmful_request"], "blocked": True,
                               "reason": "asks how to overdose someone"})
    assert messages.refusal_message(report).endswith("Reason: asks how to overdose someone")
    bare = normalise_report({"categories": ["harmful_request"], "blocked": True})
    assert "harmful_request" in messages.refusal_message(bare)


def test_disclaimer_added_once():
    once = messages.with_disclaimer("Metformin is first line.")
    assert once.endswith(messages.DISCLAIMER)
    assert messages.with_disclaimer(once) == once
