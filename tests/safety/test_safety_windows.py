"""Sentence windows read a text of any length whole; the cascade keeps its budget."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from medqa.safety.learned import FULL_READ_WORDS, SCREENED_WORDS, reading_windows, select
from medqa.safety.windows import MAX_WORDS, windows

WORDS = st.lists(st.sampled_from(["pain", "i", "want", "help", "today.", "now!", "ok?", "fine,", "\n"]),
                 max_size=400)


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_windows_cover_every_word_and_stay_short(words):
    text = " ".join(words)
    ws = windows(text)
    covered = set()
    for w in ws:
        assert text[w.start:w.end] == w.text
        assert len(w.text.split()) <= MAX_WORDS
        covered |= set(range(w.start, w.end))
    for i, ch in enumerate(text):
        assert ch.isspace() or i in covered


def test_short_text_is_one_window_and_long_posts_split():
    assert [w.text for w in reading_windows("i want to die")] == ["i want to die"]
    post = "My week was long. " * 30 + "I took all my pills an hour ago. " + "Work is fine. " * 30
    texts = [w.text for w in reading_windows(post)]
    assert "I took all my pills an hour ago." in texts
    assert len(texts) > 60


def test_unpunctuated_run_is_cut_in_overlapping_runs():
    text = " ".join(f"w{i}" for i in range(100))
    runs = windows(text)
    assert runs[0].text.split()[0] == "w0" and runs[-1].text.split()[-1] == "w99"
    assert all(len(r.text.split()) <= MAX_WORDS for r in runs)


@pytest.mark.parametrize("n", [5, 50, 200])
def test_select_reads_all_of_a_short_text_and_the_best_screened_of_a_long_one(n):
    ws = windows(" ".join(f"Sentence number {i} is here." for i in range(n)))
    rng = np.random.default_rng(0)
    screens = [rng.random(len(ws)), rng.random(len(ws))]
    chosen = select(ws, screens)
    if sum(len(w.text.split()) for w in ws) <= FULL_READ_WORDS:
        assert chosen == list(range(len(ws)))
        return
    assert sum(len(ws[i].text.split()) for i in chosen) <= SCREENED_WORDS
    assert int(np.argmax(screens[0])) in chosen and int(np.argmax(screens[1])) in chosen
