"""Local `evaluate` metric modules, so ROUGE and BLEU load with no hub access.

`evaluate.load("rouge")` downloads a script from the hub; these files are
`evaluate.Metric`s wrapping the installed `rouge_score` and `sacrebleu`
packages and load with `evaluate.load(metric_path("rouge"))`.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
AVAILABLE = ("rouge", "bleu")


def metric_path(name: str) -> str:
    if name not in AVAILABLE:
        raise ValueError(f"no local metric module {name!r}; available: {AVAILABLE}")
    return str(HERE / f"{name}.py")
