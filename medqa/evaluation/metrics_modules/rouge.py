"""ROUGE as an `evaluate.Metric`, computed by Google's `rouge_score` package
(the same package the hub's `rouge` metric wraps), loadable offline."""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = "ROUGE-1/2/L/Lsum F-measure (rouge_score package), mean over examples or bootstrap mid."
_KWARGS = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, or a list of lists (the best-scoring reference counts).
    rouge_types: default ["rouge1", "rouge2", "rougeL", "rougeLsum"].
    use_stemmer: Porter stemming before matching (default False).
    use_aggregator: mean F-measure over examples (True, default) or per-example lists (False).
Returns: {rouge_type: F-measure in [0, 1]}.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_stemmer=False, use_aggregator=True):
        rouge_types = rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer)
        per_example = []
        for prediction, reference in zip(predictions, references):
            refs = [reference] if isinstance(reference, str) else list(reference)
            per_example.append(scorer.score_multi(refs, prediction))
        if use_aggregator:
            # Plain mean (not rouge_score's bootstrap) so results are deterministic.
            n = max(len(per_example), 1)
            return {t: sum(s[t].fmeasure for s in per_example) / n for t in rouge_types}
        return {t: [s[t].fmeasure for s in per_example] for t in rouge_types}
