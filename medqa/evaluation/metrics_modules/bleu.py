"""Corpus BLEU as an `evaluate.Metric`, computed by `sacrebleu` (standard 13a
tokenisation, exponential smoothing off by default), loadable offline."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus-level BLEU via sacrebleu; `bleu` in [0, 1] (as the hub `bleu` metric), `score` in [0, 100]."
_KWARGS = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, or a list of lists (all with the same count).
    smooth_method: sacrebleu smoothing ("exp" default, "floor", "add-k", "none").
    lowercase: compare case-insensitively (default False).
    tokenize: sacrebleu tokenizer (default "13a").
Returns: bleu, score, precisions (1..4-gram, in [0, 1]), brevity_penalty, length_ratio,
    translation_length, reference_length.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, M. (2018). A Call for Clarity in Reporting BLEU Scores.",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, smooth_method="exp", lowercase=False, tokenize="13a"):
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        n_refs = {len(r) for r in refs}
        if len(n_refs) > 1:
            raise ValueError("every prediction needs the same number of references")
        # sacrebleu wants one stream per reference position.
        streams = [list(column) for column in zip(*refs)] if refs else [[]]
        result = sacrebleu.corpus_bleu(predictions, streams, smooth_method=smooth_method,
                                       lowercase=lowercase, tokenize=tokenize)
        return {
            "bleu": result.score / 100,
            "score": result.score,
            "precisions": [p / 100 for p in result.precisions],
            "brevity_penalty": result.bp,
            "length_ratio": result.ratio,
            "translation_length": result.sys_len,
            "reference_length": result.ref_len,
        }
