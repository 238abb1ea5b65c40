"""Explanation (free-text) metrics: ROUGE-L, BLEU, perplexity, verbosity.

ROUGE and BLEU go through `evaluate`, loaded from the local metric modules in
`metrics_modules/` so nothing is fetched from the hub. Perplexity is of the
reference explanation given the open-question prompt, under the model being
evaluated (lower = the model finds the reference more likely).
"""

from __future__ import annotations

import math
import statistics
from functools import lru_cache
from typing import Sequence

from medqa.data.prompts import open_question_prompt
from medqa.data.record import MCQRecord


@lru_cache(maxsize=None)
def load_metric(name: str):
    """`evaluate.load` of a bundled metric module (`rouge`, `bleu`), offline."""
    import evaluate

    from medqa.evaluation.metrics_modules import metric_path

    return evaluate.load(metric_path(name))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    return load_metric("rouge").compute(predictions=list(predictions), references=list(references),
                                        rouge_types=["rougeL"])["rougeL"]


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    return load_metric("bleu").compute(predictions=list(predictions), references=list(references))["bleu"]


def word_count(text: str) -> int:
    return len(text.split())


def verbosity(generated: str, reference: str) -> float:
    """Generated length / reference length, in words."""
    return word_count(generated) / max(word_count(reference), 1)


def perplexity(total_loglikelihood: float, n_tokens: int) -> float:
    return math.exp(-total_loglikelihood / n_tokens) if n_tokens else float("nan")


def explanation_target(record: MCQRecord) -> str:
    """The reference continuation after the prompt: the answer then its explanation,
    matching what generation is asked to produce."""
    return f" {record.answer_text.strip()}. {record.explanation.strip()}"


def with_explanations(records: Sequence[MCQRecord], n: int) -> list[MCQRecord]:
    return [r for r in records if r.explanation and r.explanation.strip() and r.answer_index is not None][:n]


def generation_metrics(generated: Sequence[str], references: Sequence[str],
                       loglikelihoods: Sequence[tuple[float, int]]) -> dict:
    """Aggregate metrics from generated texts, references and reference log-likelihoods (pure apart
    from the metric modules)."""
    ratios = [verbosity(g, r) for g, r in zip(generated, references)]
    total_ll = sum(ll for ll, _ in loglikelihoods)
    total_tokens = sum(n for _, n in loglikelihoods)
    return dict(
        n=len(generated),
        rougeL=rouge_l(generated, references),
        bleu=bleu(generated, references),
        perplexity=perplexity(total_ll, total_tokens),
        verbosity_mean=statistics.fmean(ratios) if ratios else 0.0,
        verbosity_median=statistics.median(ratios) if ratios else 0.0,
    )


def evaluate_generation(
    model, tokenizer, records: Sequence[MCQRecord], n: int, max_new_tokens: int = 96,
    batch_size: int = 4, progress: bool = False,
) -> dict:
    """Greedy answers to up to `n` questions that have explanations, scored against the references."""
    from medqa.modeling.generation import InferencePipeline
    from medqa.modeling.scoring import continuation_loglikelihoods

    chosen = with_explanations(records, n)
    if not chosen:
        return dict(n=0, note="no evaluated rows have an explanation (`exp`)", samples=[])
    pipe = InferencePipeline(model, tokenizer)
    generated: list[str] = []
    bar = _bar(len(chosen), progress)
    for start in range(0, len(chosen), batch_size):
        batch = chosen[start : start + batch_size]
        generated += pipe.generate_batch([r.question for r in batch], temperature=0.0, max_length=max_new_tokens)
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    references = [explanation_target(r).strip() for r in chosen]
    pairs = [(open_question_prompt(r.question), explanation_target(r)) for r in chosen]
    lls = continuation_loglikelihoods(model, tokenizer, pairs, batch_size=batch_size)
    result = generation_metrics(generated, references, lls)
    result["samples"] = [
        dict(id=r.id, subject=r.subject, generated=g, reference=ref, verbosity=verbosity(g, ref),
             perplexity=perplexity(*ll))
        for r, g, ref, ll in zip(chosen, generated, references, lls)
    ]
    return result


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="q", dynamic_ncols=True)
