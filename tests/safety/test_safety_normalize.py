"""One normalisation in front of every check: typographic twins read the same."""

import pytest
from hypothesis import given, settings, strategies as st

from medqa.safety.normalize import normalize_text
from medqa.safety.variants import TWINS, twins

PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)


@pytest.mark.parametrize("raw, clean", [
    ("I don’t see any point", "I don't see any point"),
    ("thinking of ending my l\u200bife", "thinking of ending my life"),
    ("so\u00adft hy\u00adphen and a\u2060joiner", "soft hyphen and ajoiner"),
    ("\u202eright-to-left\u202c mark", "right-to-left mark"),
    ("ＩＭ ＧＯＩＮＧ ＴＯ ＤＩＥ", "IM GOING TO DIE"),
    ("і wаnt tо dіе", "i want to die"),          # Cyrillic look-alikes
    ("Ρlease help", "Please help"),                # Greek capital rho
    ("𝐈 𝐰𝐚𝐧𝐭 𝐭𝐨 𝐝𝐢𝐞", "I want to die"),          # mathematical bold
    ("dïé\u00a0 tonight", "die tonight"),         # combining marks, no-break space
    ("500 mg – 1 g “twice”", '500 mg - 1 g "twice"'),
    ("first line\n\n\n  second   line ", "first line\nsecond line"),
])
def test_normalises(raw, clean):
    assert normalize_text(raw) == clean


@settings(max_examples=300, deadline=None)
@given(PRINTABLE, st.sampled_from(sorted(TWINS)))
def test_every_twin_of_ascii_text_normalises_to_it(text, name):
    assert normalize_text(TWINS[name](text)).lower() == normalize_text(text).lower()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_idempotent_on_any_unicode(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_twins_really_differ_from_the_original():
    text = "I can't breathe - please help"
    assert all(twin != text for name, twin in twins(text).items())
