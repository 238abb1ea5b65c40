"""Option shuffling: the answer text is kept, options are permuted, positions balance."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings, strategies as st

from medqa.data.augment import allowed_targets, augment_records, fixed_slots, position_counts
from medqa.data.record import MCQRecord

option_text = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=12).map(str.strip).filter(bool)


@st.composite
def records(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        opts = draw(st.lists(option_text, min_size=4, max_size=4, unique_by=str.casefold))
        out.append(MCQRecord(f"question {i}", opts, draw(st.integers(0, 3)), id=f"r{i}"))
    return out


@settings(max_examples=60, deadline=None)
@given(records(), st.integers(1, 6), st.integers(0, 2**16))
def test_copies_keep_the_answer_text_and_permute_options(recs, factor, seed):
    originals = [(r.id, list(r.options), r.answer_index) for r in recs]
    out = augment_records(recs, factor, seed)
    assert len(out) == len(recs) * factor
    by_id = {r.id: r for r in recs}
    for copy in out:
        src = by_id[copy.id.split("#aug")[0]]
        assert copy.answer_text == src.answer_text
        assert sorted(copy.options) == sorted(src.options)
        assert len(set(copy.options)) == 4
    assert [(r.id, r.options, r.answer_index) for r in recs] == originals  # sources are not mutated
    if factor == 1:
        assert out == recs


@settings(max_examples=60, deadline=None)
@given(records(min_size=20, max_size=120), st.integers(2, 8), st.integers(0, 2**16),
       st.sampled_from([[1, 0, 0, 0], [0.5, 0.3, 0.2, 0], [0.25] * 4]))
def test_factor_two_or_more_balances_positions_within_five_points(recs, factor, seed, skew):
    # Skew the source answers (MedMCQA dev is A 32% ... D 20%), moving the answer text with them.
    for i, r in enumerate(recs):
        target = min(range(4), key=lambda p: abs(sum(skew[:p + 1]) - (i + 0.5) / len(recs)) if skew[p] else 9)
        r.options[r.answer_index], r.options[target] = r.options[target], r.options[r.answer_index]
        r.answer_index = target
    shares = [c / (len(recs) * factor)
              for c in position_counts([r.answer_index for r in augment_records(recs, factor, seed)]).values()]
    assert all(abs(s - 0.25) <= 0.05 for s in shares), shares


def test_same_seed_same_copies_and_seed_matters():
    recs = [MCQRecord(f"q{i}", ["w", "x", "y", "z"], i % 4, id=str(i)) for i in range(40)]
    a = [r.options for r in augment_records(recs, 3, seed=1)]
    assert a == [r.options for r in augment_records(recs, 3, seed=1)]
    assert a != [r.options for r in augment_records(recs, 3, seed=2)]


def test_all_of_the_above_stays_in_place():
    rec = MCQRecord("Features of X include", ["Fever", "Rash", "Cough", "All of the above"], 3, id="a")
    assert fixed_slots(rec.options) == {3} and allowed_targets(rec.options, 3) == [3]
    for copy in augment_records([rec], 4, seed=0):
        assert copy.options[3] == "All of the above" and copy.answer_index == 3
    other = MCQRecord("Not a feature of X", ["Fever", "Rash", "Cough", "None of the above"], 1, id="b")
    copies = augment_records([other], 4, seed=0)
    assert {c.answer_index for c in copies} == {0, 1, 2}
    assert all(c.options[3] == "None of the above" and c.answer_text == "Rash" for c in copies)


def test_options_naming_letters_are_never_shuffled():
    rec = MCQRecord("True statements", ["Alpha", "Beta", "A and B", "Only B"], 2, id="c")
    assert fixed_slots(rec.options) is None
    assert [c.options for c in augment_records([rec], 3, seed=0)] == [rec.options]


def test_plain_options_are_not_pinned():
    for opts in (["Anaemia", "Band keratopathy", "Calcium", "Dopamine"], ["1,2", "2,3", "1,3", "1,2,3"]):
        assert fixed_slots(opts) == frozenset()


def test_counts_after_factor_two_on_a_skewed_set():
    recs = [MCQRecord(f"q{i}", ["w", "x", "y", "z"], 0 if i < 32 else 1 + i % 3, id=str(i)) for i in range(100)]
    counts = Counter(r.answer_index for r in augment_records(recs, 2, seed=3))
    assert all(45 <= c <= 55 for c in counts.values()), counts
