"""Error analysis: group wrong answers by pattern and suggest a fix for each (pure).

Patterns (a failure may show several, so counts can overlap):
- position_bias: the model favours one letter far beyond how often it is right;
- low_confidence: the model barely preferred its (wrong) choice;
- overconfident: wrong with high confidence (calibration problem);
- wrong_subject: subjects well below the overall accuracy;
- permutation_sensitivity: the choice changes when the options are reordered;
- verbosity: generated explanations far longer or shorter than references.
"""

from __future__ import annotations

from typing import Optional, Sequence

from medqa.data.record import LETTERS, MCQRecord

POSITION_BIAS_MARGIN = 0.15
"""A letter predicted this much more often than it is the answer counts as a bias."""
OVERCONFIDENT = 0.7
SUBJECT_GAP = 0.10
MIN_SUBJECT_N = 5
CONSISTENCY_FLOOR = 0.8
VERBOSITY_RANGE = (0.5, 2.0)


def low_confidence_threshold(n_options: int = 4) -> float:
    """Below 1.5x chance the model is close to guessing."""
    return 1.5 / n_options


def _pattern(name: str, count: int, out_of: int, detail: str, suggestion: str) -> dict:
    """`count` of `out_of` (the wrong answers, unless the pattern says otherwise)."""
    share = count / out_of if out_of else 0.0
    return dict(pattern=name, count=count, out_of=out_of, share=share, detail=detail, suggestion=suggestion)


def _position_bias(report: dict, failures: list[dict], n_failures: int) -> Optional[dict]:
    predicted, answers = report["prediction_distribution"], report["answer_distribution"]
    letter = max(predicted, key=predicted.get)
    excess = predicted[letter] - answers.get(letter, 0.0)
    if excess < POSITION_BIAS_MARGIN:
        return None
    count = sum(LETTERS[f["predicted"]] == letter for f in failures)
    return _pattern(
        "position_bias", count, n_failures,
        f"predicts {letter} for {predicted[letter]:.0%} of questions "
        f"while {letter} is right for {answers.get(letter, 0):.0%}",
        "train with option-shuffle augmentation (data.augment_factor > 1), or correct the letter prior "
        "(contextual calibration); compare with --method text, which does not show letters",
    )


def _confidence_patterns(failures: list[dict], n_failures: int) -> list[dict]:
    low = low_confidence_threshold()
    n_low = sum(f["confidence"] < low for f in failures)
    n_high = sum(f["confidence"] >= OVERCONFIDENT for f in failures)
    out = []
    if n_low:
        out.append(_pattern(
            "low_confidence", n_low, n_failures, f"wrong answers with confidence below {low:.3f} (1.5x chance)",
            "abstain below a confidence threshold (see the coverage curve) or fine-tune on more data in these areas",
        ))
    if n_high:
        out.append(_pattern(
            "overconfident", n_high, n_failures, f"wrong answers with confidence >= {OVERCONFIDENT}",
            "calibrate (temperature scaling on a validation split) before using confidence to abstain",
        ))
    return out


def _weak_subjects(report: dict, n_failures: int) -> Optional[dict]:
    overall = report["accuracy"]
    weak = {
        s: v for s, v in report["per_subject"].items()
        if v["n"] >= MIN_SUBJECT_N and v["accuracy"] <= overall - SUBJECT_GAP
    }
    if not weak:
        return None
    count = sum(v["n"] - v["correct"] for v in weak.values())
    names = ", ".join(f"{s} ({v['accuracy']:.0%} of {v['n']})" for s, v in list(weak.items())[:5])
    return _pattern(
        "wrong_subject", count, n_failures,
        f"subjects {SUBJECT_GAP:.0%}+ below overall accuracy {overall:.0%}: {names}",
        "add or up-weight training rows in these subjects; check their rows for label noise",
    )


def _permutation(report: dict, failures: list[dict]) -> Optional[dict]:
    perm = report.get("permutation_consistency")
    if not perm or perm["consistency"] >= CONSISTENCY_FLOOR:
        return None
    changed = set(perm.get("changed", []))
    checked_failures = [f for f in failures if f["index"] < perm["n"]]
    count = sum(f["index"] in changed for f in checked_failures)
    return _pattern(
        "permutation_sensitivity", count, len(checked_failures),
        f"only {perm['consistency']:.0%} of {perm['n']} chosen answers survive rotating the options; "
        f"counted: wrong answers among those {perm['n']} whose choice changed",
        "train with shuffled options; the model follows positions more than content",
    )


def _verbosity(generation: Optional[dict]) -> Optional[dict]:
    if not generation or not generation.get("samples"):
        return None
    lo, hi = VERBOSITY_RANGE
    ratios = [s["verbosity"] for s in generation["samples"]]
    n_long, n_short = sum(r > hi for r in ratios), sum(r < lo for r in ratios)
    if not n_long and not n_short:
        return None
    return _pattern(
        "verbosity", n_long + n_short, len(ratios),
        f"of {len(ratios)} generated explanations, {n_long} are over {hi}x and {n_short} under {lo}x "
        "the reference length",
        "use concise mode or a lower max_new_tokens for long answers; train with data.loss_on=answer_explanation "
        "so the model learns the reference style",
    )


def error_analysis(report: dict, records: Sequence[MCQRecord]) -> dict:
    """Failure patterns of an evaluation report, most frequent first."""
    failures = [dict(p, index=i) for i, p in enumerate(report.get("predictions", [])) if not p["correct"]]
    n_failures = len(failures)
    patterns = [_position_bias(report, failures, n_failures), _weak_subjects(report, n_failures),
                _permutation(report, failures), _verbosity(report.get("generation"))]
    patterns += _confidence_patterns(failures, n_failures)
    patterns = sorted((p for p in patterns if p), key=lambda p: -p["count"])
    return dict(n_failures=n_failures, n=len(records), patterns=patterns,
                note="count is out of the wrong answers unless `out_of` says otherwise; "
                     "a failure can show several patterns")
