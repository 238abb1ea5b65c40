"""The Gradio UI: pure helpers, then a real headless Chromium driving it against the real API."""

from __future__ import annotations

import io
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medqa.ui import gradio_app as ui

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_requests_for_each_mode():
    path, body = ui.request_for(ui.MCQ, "q", ["a", "b", "c", "d"], 0.7, 100, True, True)
    assert path == "/v1/mcq" and body == {"question": "q", "options": ["a", "b", "c", "d"], "use_safety": True}
    path, body = ui.request_for(ui.FREE, "q", ["", "", "", ""], 0.2, 50.0, False, False)
    assert path == "/generate" and body["max_length"] == 50 and body["use_safety"] is False and "options" not in body
    path, body = ui.request_for(ui.FREE, "q", ["", "", "", ""], 0.2, 50.0, False, True)
    assert path == "/v1/chat/completions" and body == {
        "messages": [{"role": "user", "content": "q"}], "temperature": 0.2, "max_tokens": 50, "stream": True}


@pytest.mark.parametrize("risk, label", [(0, "Risk 0"), (1, "Risk 1"), (2, "Risk 2"), (3, "EMERGENCY")])
def test_safety_badges_by_risk(risk, label):
    out = ui.safety_html({"checked": True, "risk_level": risk, "categories": ["drug_interaction"],
                          "warnings": ["<b>warfarin</b> + aspirin"], "blocked": False})
    assert label in out and f'data-risk="{risk}"' in out and "drug interaction" in out
    assert "&lt;b&gt;warfarin" in out  # escaped, never injected
    assert ui.RISK_BADGES[risk][1] in out


def test_unchecked_report_has_its_own_badge():
    assert "Safety checks off" in ui.safety_html({"checked": False, "risk_level": 0})


def test_answer_text_for_mcq_abstention_and_emergency():
    mcq = {"answer_index": 2, "answer_letter": "C", "answer_text": "Vitamin C", "confidence": 0.3, "abstained": True}
    assert "C. Vitamin C" in ui.answer_markdown("/v1/mcq", mcq) and "unsure" in ui.answer_markdown("/v1/mcq", mcq)
    assert ui.answer_markdown("/generate", {"response": "Call 911", "emergency": True}).startswith("**Emergency.**")
    frame = ui.probability_frame([0.1, 0.2, 0.3, 0.4], ["a", "b", "c", "d"])
    assert list(frame["option"]) == ["A. a", "B. b", "C. c", "D. d"]


CALIBRATED = {"answer_index": 2, "answer_letter": "C", "answer_text": "Vitamin C", "confidence": 0.41,
              "set_coverage": 0.9}
VITAMINS = ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]


@pytest.mark.parametrize(
    "letters, shown, hidden",
    [
        (["C", "D"], ["**C or D — not sure**", "(90% answer set: C. Vitamin C, D. Vitamin D)"], ["confidence"]),
        (["A", "C", "D"], ["**A, C or D — not sure**", "A. Vitamin A, C. Vitamin C, D. Vitamin D"], ["**C."]),
        (["C"], ["**C. Vitamin C**", "(90% answer set, confidence 41%)"], ["not sure", "unsure"]),
    ],
)
def test_a_calibrated_answer_shows_its_set_not_one_over_confident_letter(letters, shown, hidden):
    text = ui.answer_markdown("/v1/mcq", {**CALIBRATED, "prediction_set": letters, "abstained": len(letters) > 1},
                              VITAMINS)
    assert all(s in text for s in shown) and not any(h in text for h in hidden), text


def test_answer_set_coverage_and_letters_without_option_texts():
    text = ui.answer_markdown("/v1/mcq", {**CALIBRATED, "prediction_set": ["B", "C"], "set_coverage": 0.975})
    assert "**B or C — not sure** (97.5% answer set: B, C)" in text
    uncalibrated = ui.answer_markdown("/v1/mcq", {**CALIBRATED, "prediction_set": None, "abstained": False})
    assert uncalibrated == "**C. Vitamin C** (confidence 41%)"


def test_limits_default_when_the_api_is_down():
    assert ui.server_limits("http://127.0.0.1:9")["max_new_tokens"] == 512


def test_the_ui_needs_a_login_beyond_loopback():
    assert ui.login("127.0.0.1", None) is None
    assert ui.login("0.0.0.0", "nurse:correct horse") == ("nurse", "correct horse")
    with pytest.raises(ValueError, match="MEDQA_UI_AUTH"):
        ui.login("0.0.0.0", None)
    with pytest.raises(ValueError, match="user:password"):
        ui.login("127.0.0.1", "nopassword")
    assert ui.login("10.0.0.5", None, allow_unauthenticated=True) is None


def test_a_ui_with_a_login_serves_nothing_before_it():
    """Real HTTP to a real Gradio server on 127.0.0.1 (its API need not be up)."""
    import requests

    from serving_helpers import free_port

    port = free_port()
    demo = ui.launch("http://127.0.0.1:9", port=port, block=False, auth=("nurse", "pw"))
    url = f"http://127.0.0.1:{port}"
    try:
        assert requests.get(url + "/config", timeout=30).status_code == 401
        assert requests.post(url + "/login", data={"username": "nurse", "password": "nope"},
                             timeout=30).status_code == 400
        session = requests.Session()
        assert session.post(url + "/login", data={"username": "nurse", "password": "pw"}, timeout=30).json()["success"]
        assert session.get(url + "/config", timeout=30).status_code == 200
    finally:
        demo.close()


@pytest.mark.parametrize("use_safety", [True, False])  # the streamed chat path and /generate
def test_unreachable_api_is_reported_not_raised(use_safety):
    outputs = list(ui.ask("http://127.0.0.1:9", None, ui.FREE, "q", "", "", "", "", 0.7, 10, True, use_safety))
    assert len(outputs) == 1
    answer, frame, safety, _ = outputs[0]
    assert answer.startswith("**Error") and "cannot reach" in answer and frame is None and safety == ""


# ---------------------------------------------------------------- streamed answers (no server, or a canned one)


def sse(data) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(delta: dict, finish=None, **extra) -> dict:
    return {"id": "chatcmpl-r1", "object": "chat.completion.chunk", "created": 1700000000, "model": "medqa-tiny",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


REPORT = {"checked": True, "risk_level": 1, "categories": ["drug_interaction"], "warnings": ["check renal function"],
          "blocked": False, "actions": []}
EMERGENCY_REPORT = {"checked": True, "risk_level": 3, "categories": ["emergency"], "warnings": [], "blocked": False}
ANSWER_PIECES = ["Metformin is first-line. ", "Start at 500 µg… no: 500 mg daily."]
USAGE = {"id": "chatcmpl-r1", "object": "chat.completion.chunk", "created": 1700000000, "model": "medqa-tiny",
         "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23}}


def answer_events(pieces=ANSWER_PIECES, finish="stop", report=REPORT) -> list[str]:
    """A stream as the server sends it: role, content deltas, the final chunk with its report, usage, [DONE]."""
    return [sse(chunk({"role": "assistant", "content": ""}))] + [sse(chunk({"content": p})) for p in pieces] + [
        sse(chunk({}, finish, safety_report=report)), sse(USAGE), sse("[DONE]")]


def test_parse_sse_reads_a_realistic_stream_and_stops_at_done():
    text = ": keep-alive\n\n" + "".join(answer_events()) + "data: {not json, and after [DONE] anyway\n\n"
    for lines in (text.splitlines(), io.StringIO(text)):  # without and with line ends
        events = list(ui.parse_sse(lines))
        assert [e["choices"][0]["delta"].get("content") for e in events[:3]] == ["", *ANSWER_PIECES]
        assert events[3]["choices"][0]["finish_reason"] == "stop" and events[3]["safety_report"] == REPORT
        assert events[4] == USAGE and len(events) == 5


def test_parse_sse_joins_multi_line_data_and_skips_other_fields():
    text = 'event: chunk\nid: 7\ndata: {"a":\ndata:  1}\nretry: 10\n\ndata: {"b": 2}'  # last event unterminated
    assert list(ui.parse_sse(text.splitlines())) == [{"a": 1}, {"b": 2}]


def test_an_error_event_raises_after_the_chunks_before_it():
    text = sse(chunk({"content": "Metformin "})) + sse({"error": {"message": "no answer within 30 s", "type":
                                                                 "timeout", "param": None, "code": None}})
    events = ui.parse_sse(text.splitlines())
    assert next(events)["choices"][0]["delta"] == {"content": "Metformin "}
    with pytest.raises(ui.StreamError, match="no answer within 30 s") as err:
        next(events)
    assert err.value.kind == "timeout"
    with pytest.raises(ui.StreamError, match="not JSON"):
        list(ui.parse_sse(["data: {oops", ""]))


def test_the_accumulator_grows_text_and_keeps_the_finish_and_report():
    acc = ui.StreamedAnswer()
    grew = [acc.add(e) for e in ui.parse_sse("".join(answer_events()).splitlines())]
    assert grew == [False, True, True, False, False]  # role, two pieces, final, usage
    assert acc.text == "".join(ANSWER_PIECES) and acc.finish_reason == "stop" and acc.safety_report == REPORT
    assert ui.streamed_markdown(acc, final=True) == acc.text
    acc.finish_reason = "length"
    assert "cut short at the token limit" in ui.streamed_markdown(acc, final=True)
    assert ui.streamed_markdown(acc) == acc.text  # still streaming: no verdict yet


def test_a_stream_that_stops_without_its_final_chunk_says_so():
    acc = ui.StreamedAnswer()
    acc.add(chunk({"content": "Metformin"}))
    assert acc.finish_reason is None and "may be incomplete" in ui.streamed_markdown(acc, final=True)


@pytest.mark.parametrize("report, lead", [(EMERGENCY_REPORT, "**Emergency.** "),
                                          ({**REPORT, "risk_level": 2, "blocked": True}, "**Refused.** ")])
def test_a_content_filtered_stream_reads_like_generates_emergency_or_refusal(report, lead):
    acc = ui.StreamedAnswer()
    for e in ui.parse_sse("".join(answer_events(["Call your emergency number now."], "content_filter",
                                                report)).splitlines()):
        acc.add(e)
    assert ui.streamed_markdown(acc, final=True) == lead + "Call your emergency number now."
    assert ui.streamed_markdown(acc, final=True) == ui.answer_markdown("/generate", {
        "response": acc.text, "emergency": lead.startswith("**Emergency"), "refused": lead.startswith("**Ref")})


class CannedApi(BaseHTTPRequestHandler):
    """A stand-in API: each question (the last chat message, or /generate's) names a canned reply."""

    protocol_version = "HTTP/1.1"  # chunked transfer, as a streaming server sends it
    timeout = 10

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append((self.path, body, self.headers.get("authorization")))
        question = body["messages"][-1]["content"] if "messages" in body else body["question"]
        getattr(self, "reply_" + question)()

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: list[str], pause_after=None) -> None:
        """`events` chunk by chunk; after the first `pause_after`, wait (bounded) for the test's go-ahead,
        and without it drop the connection mid-answer, so a client that buffers the body gets no answer."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")  # no charset: the client must still read UTF-8
        self.send_header("x-request-id", "req-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i, event in enumerate(events):
            if i == pause_after and not self.server.go_on.wait(3):
                self.close_connection = True  # the socket closes with the answer unfinished
                return
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def reply_diabetes(self):
        self.send_events(answer_events(), pause_after=2)  # role and first piece, then wait

    def reply_busy(self):
        self.send_json(503, {"error": "the server is at capacity; retry shortly", "request_id": "req-503"})

    def reply_timeout(self):
        self.send_events([sse(chunk({"content": "Metformin "})),
                          sse({"error": {"message": "no answer within 30 s", "type": "timeout"}})])

    def reply_unchecked(self):
        self.send_json(200, {"response": "Metformin.", "emergency": False, "refused": False, "request_id": "req-gen",
                             "safety_report": {"checked": False, "risk_level": 0}, "inference_time_ms": 12.0})

    def log_message(self, *args):
        pass


@pytest.fixture
def canned_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CannedApi)
    server.seen, server.go_on = [], threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.go_on.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def ask_free(server, question: str, use_safety: bool = True):
    url = f"http://127.0.0.1:{server.server_port}"
    return ui.ask(url, "k3y", ui.FREE, question, "", "", "", "", 0.3, 64, True, use_safety)


def test_ask_streams_a_checked_answer_as_it_arrives_then_badges_it(canned_api):
    outputs = ask_free(canned_api, "diabetes")
    answer, frame, safety, latency = next(outputs)  # arrives while the server still holds the rest back
    assert answer == ANSWER_PIECES[0] and frame is None and safety == ""
    assert "first content" in latency and "streaming…" in latency and "req-stream" in latency
    canned_api.go_on.set()
    rest = list(outputs)
    assert [r[0] for r in rest] == ["".join(ANSWER_PIECES)] * 2  # the second piece, then the final update
    answer, frame, safety, latency = rest[-1]
    assert "500 µg… no: 500 mg" in answer  # UTF-8 though the header names no charset
    assert 'data-risk="1"' in safety and "Risk 1" in safety and "check renal function" in safety
    assert latency.startswith("Latency: first content ") and " ms · total " in latency and "`req-stream`" in latency
    assert canned_api.seen == [("/v1/chat/completions", {"messages": [{"role": "user", "content": "diabetes"}],
                                                         "temperature": 0.3, "max_tokens": 64, "stream": True},
                                "Bearer k3y")]


def test_ask_reports_an_error_before_the_stream_as_its_status(canned_api):
    outputs = list(ask_free(canned_api, "busy"))
    assert len(outputs) == 1
    answer, frame, safety, latency = outputs[0]
    assert answer == "**Error 503:** the server is at capacity; retry shortly" and safety == ""
    assert "req-503" in latency


def test_ask_reports_an_error_event_with_what_arrived_before_it(canned_api):
    *_, (answer, _, safety, latency) = ask_free(canned_api, "timeout")
    assert answer.startswith("**Error (timeout):** no answer within 30 s") and answer.endswith("Metformin ")
    assert "cut short" in answer and "req-stream" in latency


def test_ask_with_safety_checks_off_uses_generate_once(canned_api):
    outputs = list(ask_free(canned_api, "unchecked", use_safety=False))
    assert len(outputs) == 1 and outputs[0][0] == "Metformin." and "Safety checks off" in outputs[0][2]
    assert canned_api.seen[0][0] == "/generate" and canned_api.seen[0][1]["use_safety"] is False


@pytest.mark.browser
@pytest.mark.ray
def test_chromium_asks_a_question_and_sees_answer_chart_and_badges(ui_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(ui_url, wait_until="domcontentloaded", timeout=60_000)
            page.locator("#question textarea").fill("Deficiency of which vitamin causes scurvy?")
            for letter, text in zip("abcd", ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]):
                page.locator(f"#option-{letter} input, #option-{letter} textarea").first.fill(text)
            page.locator("#ask").click()
            expect(page.locator("#latency")).to_contain_text("Latency", timeout=60_000)
            expect(page.locator("#answer")).to_contain_text("Vitamin", timeout=10_000)
            expect(page.locator("#safety .medqa-badge").first).to_contain_text("Risk")
            expect(page.locator("#probabilities canvas, #probabilities svg").first).to_be_visible(timeout=20_000)
            shot = tmp_path / "ui_mcq.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # Free text: an emergency gets the notice and the red risk-3 badge.
            page.locator("#mode label", has_text=ui.FREE).click()
            page.locator("#question textarea").fill(
                "I have crushing chest pain spreading to my left arm right now. What should I do?")
            page.locator("#ask").click()
            expect(page.locator("#answer")).to_contain_text("Emergency", timeout=60_000)
            expect(page.locator("#safety .medqa-safety")).to_have_attribute("data-risk", "3")
            page.screenshot(path=str(tmp_path / "ui_emergency.png"), full_page=True)
        finally:
            browser.close()
    keep = Path(__file__).resolve().parents[2] / "runs" / "ui_screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    for f in tmp_path.glob("ui_*.png"):
        shutil.copy(f, keep / f.name)
