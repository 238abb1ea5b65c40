"""Streamed answers that stay safe: the model's text released a sentence at a time, each
sentence only after the answer up to and including it has passed the output check, and
OpenAI's server-sent-event chunks that carry it.

A dangerous dose is found by the output check on the whole answer so far, before the
sentence that completes it is sent, so a withheld answer never reaches the client: the
stream ends with the withheld-answer message instead (`finish_reason: "content_filter"`).
What the check adds to a finished answer (an emergency notice the answer itself raises,
interaction warnings, the disclaimer) is sent when it first appears: a notice before the
sentence that raised it, the rest after the last sentence.

Pure asyncio: no Ray, no HTTP, no model. May import: serving.messages (the disclaimer).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Optional

from medqa.serving.messages import with_disclaimer

# A sentence ends at . ! ? or ; followed by white space, or at a line break. Splitting
# early or late changes only when text is released, never what is checked.
_BOUNDARY = re.compile(r"[.!?;]+\s+|\n+")

Check = Callable[[str], Awaitable[tuple[str, dict]]]
"""The output check: answer so far → (the text to show for it, its report)."""


class SentenceSplitter:
    """Pieces of text in, completed sentences out (each with its trailing punctuation and space)."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, piece: str) -> list[str]:
        self.pending += piece
        done, start = [], 0
        for m in _BOUNDARY.finditer(self.pending):
            if self.pending[start:m.end()].strip():  # white space alone goes with the next sentence
                done.append(self.pending[start:m.end()])
                start = m.end()
        self.pending = self.pending[start:]
        return done

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest


@dataclass
class StreamOutcome:
    """How a checked stream ended, for the final chunk and the request's log line."""

    answer: str = ""
    """What was sent of the model's answer."""
    report: Optional[dict] = None
    """The last output check's report (None when nothing was checked)."""
    withheld: bool = False
    notices: set = field(default_factory=set)


def _notice(checked: str, answer: str) -> str:
    """What the check put before the answer (an emergency notice), if anything."""
    at = checked.find(answer) if answer else -1
    return checked[:at].strip() if at > 0 else ""


def _additions(checked: str, answer: str) -> str:
    """What the check put after the answer (warnings, the disclaimer)."""
    at = checked.find(answer) if answer else -1
    tail = checked[at + len(answer):] if at >= 0 else with_disclaimer("")
    return tail if tail.strip() else ""


async def checked_text(pieces: AsyncIterator[str], check: Check, outcome: StreamOutcome) -> AsyncIterator[str]:
    """The model's `pieces` as the client may see them (see the module docstring)."""
    splitter, checked = SentenceSplitter(), None

    async def release(sentence: str) -> Optional[str]:
        nonlocal checked
        candidate = outcome.answer + sentence
        checked, outcome.report = await check(candidate)
        if outcome.report["blocked"]:
            outcome.withheld = True
            return None
        notice = _notice(checked, candidate.strip())
        out = sentence
        if notice and notice not in outcome.notices:
            outcome.notices.add(notice)
            out = notice + "\n\n" + sentence
        outcome.answer = candidate
        return out

    async for piece in pieces:
        for sentence in splitter.feed(piece):
            out = await release(sentence)
            if out is None:
                yield ("\n\n" if outcome.answer else "") + checked
                return
            yield out
    rest = splitter.flush()
    if rest.strip() or checked is None:
        out = await release(rest)
        if out is None:
            yield ("\n\n" if outcome.answer else "") + checked
            return
        if out:
            yield out
    additions = _additions(checked, outcome.answer.strip())
    if additions:
        yield additions


# ---------------------------------------------------------------- OpenAI chunks


@dataclass(frozen=True)
class ChunkHeader:
    """The fields every chunk of one completion repeats."""

    id: str
    created: int
    model: str


def chunk(head: ChunkHeader, delta: Optional[dict] = None, finish_reason: Optional[str] = None) -> dict:
    return {"id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]}


def usage_chunk(head: ChunkHeader, prompt_tokens: int, completion_tokens: int) -> dict:
    """`stream_options.include_usage`: a last chunk with no choices and the usage."""
    return {"id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
            "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens}}


def sse(data: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"
