"""The Gradio UI: pure helpers, then a real headless Chromium driving it against the real API."""

from __future__ import annotations

import shutil
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


def test_unreachable_api_is_reported_not_raised():
    answer, frame, safety, _ = ui.ask("http://127.0.0.1:9", None, ui.FREE, "q", "", "", "", "", 0.7, 10, True, True)
    assert answer.startswith("**Error") and "cannot reach" in answer and frame is None


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
