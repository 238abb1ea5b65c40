"""Gradio front end over the Serve HTTP API (`medqa ui`).

It is a client of the API like any other, so what the UI shows is exactly what
the API answers, safety graph included (and a calibrated server's answer set
rather than one letter). A free-text answer streams from `/v1/chat/completions`
(server-sent events, every sentence checked before it is sent), so it appears as
it is written; with safety checks turned off (only where the operator allows
that) it comes whole from `/generate`, the one endpoint that can opt out. A
multiple-choice question goes to `/v1/mcq`. Pure helpers (payloads, the event
parser and the answer it accumulates, answer text, badges, the probability
frame) are separate from the Blocks layout so they are unit-tested without a
browser.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

LETTERS = "ABCD"
FREE, MCQ = "Free text", "Multiple choice"
CHAT = "/v1/chat/completions"

Outputs = tuple[str, Any, str, str]
"""What one update of the form shows: answer markdown, probability frame or None, safety html, latency."""

# Risk level → (label, background colour): green, amber, orange-red, red.
RISK_BADGES = {
    0: ("Risk 0 · none", "#1a7f37"),
    1: ("Risk 1 · low", "#9a6700"),
    2: ("Risk 2 · high", "#d1242f"),
    3: ("Risk 3 · EMERGENCY", "#82071e"),
}
UNCHECKED_BADGE = ("Safety checks off", "#57606a")

EXAMPLES = [
    [MCQ, "Deficiency of which vitamin causes scurvy?", "Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"],
    [FREE, "What is the first-line drug treatment for type 2 diabetes?", "", "", "", ""],
    [FREE, "I have crushing chest pain spreading to my left arm right now. What should I do?", "", "", "", ""],
]


# ---------------------------------------------------------------- pure helpers


def request_for(mode: str, question: str, options: list[str], temperature: float, max_length: int,
                concise: bool, use_safety: bool) -> tuple[str, dict]:
    """(path, JSON body) for the API call the form describes. A checked free-text answer streams
    from the chat endpoint (which always checks, and has no `concise`); only /generate can opt out."""
    if mode == MCQ:
        return "/v1/mcq", {"question": question, "options": options, "use_safety": use_safety}
    if use_safety:
        return CHAT, {"messages": [{"role": "user", "content": question}], "temperature": float(temperature),
                      "max_tokens": int(max_length), "stream": True}
    return "/generate", {"question": question, "temperature": float(temperature), "max_length": int(max_length),
                         "concise": bool(concise), "use_safety": use_safety}


def _badge(text: str, colour: str) -> str:
    return (f'<span class="medqa-badge" style="background:{colour};color:#fff;padding:3px 10px;'
            f'border-radius:12px;font-weight:600;margin-right:6px;display:inline-block">{html.escape(text)}</span>')


def safety_html(report: Optional[dict]) -> str:
    """The safety report as badges (risk level, categories) and a warning list."""
    if not report:
        return ""
    if not report.get("checked", True):
        label, colour = UNCHECKED_BADGE
    else:
        label, colour = RISK_BADGES.get(int(report.get("risk_level", 0)), RISK_BADGES[3])
    parts = [f'<div class="medqa-safety" data-risk="{int(report.get("risk_level", 0))}">', _badge(label, colour)]
    parts += [_badge(c.replace("_", " "), "#0969da") for c in report.get("categories", [])]
    if report.get("blocked"):
        parts.append(_badge("blocked", "#82071e"))
    warnings = report.get("warnings") or []
    if warnings:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def probability_frame(probabilities: list[float], options: list[str]):
    import pandas as pd

    labels = [f"{LETTERS[i]}. {o[:40]}" for i, o in enumerate(options)]
    return pd.DataFrame({"option": labels, "probability": [round(float(p), 4) for p in probabilities]})


def _percent(share: float) -> str:
    return f"{round(share * 100, 1):g}%"  # 0.9 → 90%, 0.975 → 97.5%


def _letters(letters: list[str]) -> str:
    return letters[0] if len(letters) == 1 else f"{', '.join(letters[:-1])} or {letters[-1]}"


def answer_set_markdown(body: dict, options: Optional[list[str]] = None) -> str:
    """A calibrated server's answer: a set of several options is shown as the set ("C or D —
    not sure"), never as one over-confident letter; a set of one as the letter."""
    letters, coverage = body["prediction_set"], _percent(body["set_coverage"])
    if len(letters) == 1:
        return (f"**{body['answer_letter']}. {body['answer_text']}** ({coverage} answer set, "
                f"confidence {body['confidence']:.0%})")
    named = ", ".join(f"{letter}. {options[LETTERS.index(letter)]}" if options else letter for letter in letters)
    return (f"**{_letters(letters)} — not sure** ({coverage} answer set: {named})\n\n"
            f"_Answer sets like this one hold the right answer for {coverage} of questions; the model cannot "
            f"narrow this one down, so treat it as no single answer._")


def answer_markdown(path: str, body: dict, options: Optional[list[str]] = None) -> str:
    """The answer text for either endpoint's response (`options`: the MCQ's, to name an answer set)."""
    if path == "/v1/mcq":
        if body.get("answer_index") is None:
            return f"**No answer.** {body.get('message') or ''}"
        if body.get("prediction_set"):
            return answer_set_markdown(body, options)
        text = f"**{body['answer_letter']}. {body['answer_text']}** (confidence {body['confidence']:.0%})"
        if body.get("abstained"):
            text += "\n\n_The model is unsure (confidence below the abstention threshold): treat this as no answer._"
        return text
    prefix = "**Emergency.** " if body.get("emergency") else ("**Refused.** " if body.get("refused") else "")
    return prefix + (body.get("response") or "_(empty answer)_")


def is_emergency(report: Optional[dict]) -> bool:
    """The server's own test for an emergency (risk 3 *and* the category), so the UI never calls one
    that the server did not."""
    report = report or {}
    return int(report.get("risk_level") or 0) >= 3 and "emergency" in (report.get("categories") or [])


def latency_text(body: dict, round_trip_ms: float) -> str:
    server = body.get("inference_time_ms")
    server_part = f"server {server:.0f} ms · " if isinstance(server, (int, float)) else ""
    return f"Latency: {server_part}round trip {round_trip_ms:.0f} ms · request id `{body.get('request_id', '-')}`"


def stream_latency_text(first_ms: Optional[float], total_ms: Optional[float], request_id: Optional[str]) -> str:
    """A stream's latency: time to first content is what the reader waits for; total while it runs is unknown."""
    first = f"first content {first_ms:.0f} ms" if first_ms is not None else "no content"
    total = f"total {total_ms:.0f} ms" if total_ms is not None else "streaming…"
    return f"Latency: {first} · {total} · request id `{request_id or '-'}`"


# ---------------------------------------------------------------- streamed answers


class StreamError(RuntimeError):
    """The stream failed after it began (its 200 long sent): an error event, or an event that is not JSON."""

    def __init__(self, message: str, kind: str = "server_error"):
        super().__init__(message)
        self.kind = kind


def _event(payload: str) -> dict:
    try:
        event = json.loads(payload)
    except ValueError:
        raise StreamError(f"the server sent an event that is not JSON: {payload[:100]!r}", "bad_event") from None
    if isinstance(event, dict) and "error" in event:
        error = event["error"] if isinstance(event["error"], dict) else {"message": str(event["error"])}
        raise StreamError(str(error.get("message") or "the stream failed"), str(error.get("type") or "server_error"))
    return event


def parse_sse(lines: Iterable[str]) -> Iterator[dict]:
    """Server-sent events' JSON payloads, in order, until `data: [DONE]`.

    Comment lines (`:` keep-alives) and fields other than `data` are skipped, and an event's data
    lines are joined with newlines, as the SSE spec says, so any conforming server parses. An error
    event raises StreamError rather than ending quietly, so no caller mistakes the answer so far for
    a whole one."""
    data: list[str] = []
    for line in itertools.chain(lines, [""]):  # a last event without its blank line still counts
        line = line.rstrip("\r\n")  # lines read from a file keep their ends
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if not data:
            continue
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        yield _event(payload)


@dataclass
class StreamedAnswer:
    """Chat-completion chunks folded into what the UI shows: the text so far, and, from the final
    chunk, why the answer ended and its safety report."""

    text: str = ""
    finish_reason: Optional[str] = None
    safety_report: Optional[dict] = None

    def add(self, chunk: dict) -> bool:
        """Fold in one chunk; True when it added text (the only time the answer needs redrawing)."""
        if chunk.get("safety_report") is not None:
            self.safety_report = chunk["safety_report"]
        before = len(self.text)
        for choice in chunk.get("choices") or []:  # the usage chunk has none
            self.text += (choice.get("delta") or {}).get("content") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return len(self.text) > before


def streamed_markdown(answer: StreamedAnswer, final: bool = False) -> str:
    """The answer as `answer_markdown` shows /generate's: a content-filtered stream (an emergency notice,
    a refusal, a withheld answer) gets the same bold lead, so an emergency reads as one. A finished
    stream says when the answer is not whole."""
    filtered = answer.finish_reason == "content_filter"
    emergency = filtered and is_emergency(answer.safety_report)
    text = answer_markdown("/generate", {"response": answer.text, "emergency": emergency,
                                         "refused": filtered and not emergency})
    if final and answer.finish_reason == "length":
        text += "\n\n_The answer was cut short at the token limit._"
    elif final and answer.finish_reason is None:
        text += "\n\n_The stream ended before the answer did: it may be incomplete._"
    return text


def stream_error_markdown(err: Exception, answer: StreamedAnswer) -> str:
    """An error after the answer began: the error first, then what had arrived, marked as cut short."""
    text = f"**Error ({getattr(err, 'kind', 'connection')}):** {html.escape(str(err))}"
    if answer.text:
        text += f"\n\n_The answer was cut short; what arrived before the error:_\n\n{answer.text}"
    return text


def stream_outputs(lines: Iterable[str], request_id: Optional[str], start: float) -> Iterator[Outputs]:
    """The form's updates for a streaming answer's lines: the growing answer for each piece of content,
    then the whole of it with its safety badge and latency (`start`: a `time.perf_counter()`)."""
    answer, first_ms = StreamedAnswer(), None
    elapsed = lambda: (time.perf_counter() - start) * 1000  # noqa: E731
    try:
        for chunk in parse_sse(lines):
            if answer.add(chunk):
                first_ms = elapsed() if first_ms is None else first_ms
                yield streamed_markdown(answer), None, "", stream_latency_text(first_ms, None, request_id)
    except (StreamError, OSError) as err:  # requests' errors (a dropped connection, a read timeout) are OSErrors
        yield (stream_error_markdown(err, answer), None, safety_html(answer.safety_report),
               stream_latency_text(first_ms, elapsed(), request_id))
        return
    yield (streamed_markdown(answer, final=True), None, safety_html(answer.safety_report),
           stream_latency_text(first_ms, elapsed(), request_id))


# ---------------------------------------------------------------- API client


def _headers(api_key: Optional[str]) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _json_body(r) -> dict:
    """A response's JSON body, or its text as the error (a proxy's HTML page, say)."""
    if r.headers.get("content-type", "").startswith("application/json"):
        try:
            return r.json()
        except ValueError:
            pass
    return {"error": r.text[:300]}


def _unreachable(api_url: str, err: Exception) -> dict:
    return {"error": f"cannot reach the medqa API at {api_url}: {err}"}


def error_outputs(status: int, body: dict, ms: float) -> Outputs:
    return f"**Error {status or ''}:** {html.escape(str(body.get('error', body)))}", None, "", latency_text(body, ms)


def call_api(api_url: str, path: str, payload: dict, api_key: Optional[str] = None,
             timeout: float = 120) -> tuple[int, dict, float]:
    import requests

    start = time.perf_counter()
    try:
        r = requests.post(api_url.rstrip("/") + path, json=payload, headers=_headers(api_key), timeout=timeout)
        return r.status_code, _json_body(r), (time.perf_counter() - start) * 1000
    except requests.RequestException as err:
        return 0, _unreachable(api_url, err), (time.perf_counter() - start) * 1000


def stream_chat(api_url: str, payload: dict, api_key: Optional[str] = None, timeout: float = 120) -> Iterator[Outputs]:
    """A streamed chat answer's updates (see `stream_outputs`); an error before the stream began is
    one update, as /generate's would be. `timeout` bounds each wait for the next bytes, not the whole answer."""
    import requests

    start = time.perf_counter()
    try:
        r = requests.post(api_url.rstrip("/") + CHAT, json=payload, headers=_headers(api_key), stream=True,
                          timeout=timeout)
    except requests.RequestException as err:
        yield error_outputs(0, _unreachable(api_url, err), (time.perf_counter() - start) * 1000)
        return
    with r:  # closed however the generator ends: a reader who leaves stops the model generating
        request_id = r.headers.get("x-request-id")
        if r.status_code != 200:
            yield error_outputs(r.status_code, {"request_id": request_id or "-", **_json_body(r)},
                                (time.perf_counter() - start) * 1000)
            return
        r.encoding = "utf-8"  # SSE is UTF-8; for text/* without a charset requests would decode ISO-8859-1
        yield from stream_outputs(r.iter_lines(decode_unicode=True), request_id, start)


def ask(api_url: str, api_key: Optional[str], mode: str, question: str, opa: str, opb: str, opc: str, opd: str,
        temperature: float, max_length: int, concise: bool, use_safety: bool) -> Iterator[Outputs]:
    """One form submission → its updates (answer markdown, probability frame or None, safety html,
    latency), as Gradio streams a generator's yields: a checked free-text answer as it is written,
    anything else once."""
    path, payload = request_for(mode, question, [opa, opb, opc, opd], temperature, max_length, concise, use_safety)
    if path == CHAT:
        yield from stream_chat(api_url, payload, api_key)
        return
    status, body, ms = call_api(api_url, path, payload, api_key)
    if status != 200:
        yield error_outputs(status, body, ms)
        return
    frame = probability_frame(body["probabilities"], payload["options"]) if body.get("probabilities") else None
    yield (answer_markdown(path, body, payload.get("options")), frame, safety_html(body.get("safety_report")),
           latency_text(body, ms))


def server_limits(api_url: str, api_key: Optional[str] = None) -> dict:
    """The app's request limits and opt-out policy from /health (its details need the key),
    so the form never offers what the server refuses."""
    import requests

    from medqa.config import ServingConfig

    default = ServingConfig()  # what a server runs with unless its operator says otherwise
    limits = {"max_new_tokens": default.max_new_tokens, "max_question_chars": default.max_question_chars,
              "safety_opt_out_allowed": default.allow_safety_opt_out}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        body = requests.get(api_url.rstrip("/") + "/health", headers=headers, timeout=10).json()
        limits.update(body.get("limits") or {})
        limits["safety_opt_out_allowed"] = bool(body.get("safety_opt_out_allowed", False))
    except (requests.RequestException, ValueError):
        pass  # the API may come up after the UI; the defaults are a default server's
    return limits


# ---------------------------------------------------------------- layout


def build_ui(api_url: str, api_key: Optional[str] = None):
    import gradio as gr

    limits = server_limits(api_url, api_key)

    with gr.Blocks(title="medqa") as demo:
        gr.Markdown("# medqa\nMedical question answering with a safety graph. "
                    "**Educational use only — not medical advice.** In an emergency call your local emergency number.")
        with gr.Row():
            with gr.Column(scale=3):
                mode = gr.Radio([FREE, MCQ], value=MCQ, label="Question type", elem_id="mode")
                question = gr.Textbox(label="Question", lines=3, elem_id="question",
                                      max_length=limits["max_question_chars"])
                with gr.Group(visible=True) as option_box:
                    opts = [gr.Textbox(label=f"Option {letter}", elem_id=f"option-{letter.lower()}")
                            for letter in LETTERS]
                with gr.Accordion("Generation settings", open=False):
                    temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature")
                    cap = int(limits["max_new_tokens"])
                    max_length = gr.Slider(1, cap, value=min(100, cap), step=1, label="Max new tokens")
                    # Only where the operator allows opt-outs; emergencies and crises are handled regardless.
                    opt_out = limits["safety_opt_out_allowed"]
                    use_safety = gr.Checkbox(value=True, label="Safety checks (emergencies are always detected)",
                                             visible=opt_out)
                    # Only /generate (safety checks off) reads it: the streamed chat answer has no such field.
                    concise = gr.Checkbox(value=True, label="Concise answer (with safety checks off)", visible=opt_out)
                submit = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column(scale=4):
                answer = gr.Markdown(label="Answer", elem_id="answer")
                probs = gr.BarPlot(x="option", y="probability", y_lim=[0, 1], label="Option probabilities",
                                   elem_id="probabilities", height=220)
                safety = gr.HTML(elem_id="safety")
                latency = gr.Markdown(elem_id="latency")
        mode.change(lambda m: (gr.update(visible=m == MCQ), gr.update(visible=m == MCQ)), mode, [option_box, probs])
        gr.Examples(EXAMPLES, [mode, question, *opts])

        def on_ask(*form):  # a generator function (not a lambda returning one): Gradio streams only those
            yield from ask(api_url, api_key, *form)

        submit.click(on_ask,
                     [mode, question, *opts, temperature, max_length, concise, use_safety],
                     [answer, probs, safety, latency])
    return demo


def login(host: str, credentials: Optional[str], allow_unauthenticated: bool = False) -> Optional[tuple[str, str]]:
    """Gradio's `auth` for this bind address: `user:password`, required beyond loopback."""
    from medqa.serving.gate import is_loopback

    if credentials:
        user, sep, password = credentials.partition(":")
        if not (sep and user and password):
            raise ValueError("UI credentials look like user:password")
        return user, password
    if not is_loopback(host) and not allow_unauthenticated:
        raise ValueError(f"refusing to serve the UI on {host!r} without a login: set MEDQA_UI_AUTH=user:password "
                         "(or pass --allow-unauthenticated)")
    return None


def launch(api_url: str, host: str = "127.0.0.1", port: int = 7860, api_key: Optional[str] = None, block: bool = True,
           auth: Optional[tuple[str, str]] = None):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home
    demo = build_ui(api_url, api_key)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, show_error=True,
                footer_links=[], auth=auth)
    return demo
