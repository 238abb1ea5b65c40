"""The one multiple-choice scorer: training eval, Tune, the CLI and `/v1/mcq` all call it.

Two methods, both "pick the option with the highest log-likelihood":

- ``letter`` (default): the prompt of `medqa.data.prompts.mcq_prompt` lists the
  options and ends in "Answer:"; the continuations " A".." D" are scored, exactly
  as lm-evaluation-harness's ``medmcqa`` task does (its ``acc``). When every
  continuation is a single token (true for BPE tokenizers such as SmolLM2's and
  Phi-2's) all four are read from ONE forward pass over the prompt.
- ``text``: the prompt is the bare question ("Question: ...\\nAnswer:") and each
  option text is scored as the continuation " <option>"; options are compared by
  log-likelihood per UTF-8 byte of the continuation, as the harness's ``acc_norm``.

Tokenisation follows the harness's ``_encode_pair``: the continuation's tokens
are ``encode(context + continuation)[len(encode(context)):]``, without special
tokens, and sequences longer than the model's window are cut from the left.

Batches are padded on the RIGHT with an attention mask: with causal attention,
real tokens never see the padding and keep their natural position ids, so a
question scores the same alone or in any batch (tests check this).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from medqa.data.prompts import letter_continuations, mcq_prompt, open_question_prompt
from medqa.data.record import MCQRecord
from medqa.modeling.modes import eval_mode, model_device, pad_token_id

METHODS = ("letter", "text")


@dataclass
class MCQScore:
    loglikelihoods: list[float]
    """Summed log-probability of each option's continuation (harness ``acc`` compares these)."""
    probabilities: list[float]
    """Softmax over the options' comparison scores (see `comparison_scores`)."""
    predicted_index: int
    confidence: float
    """The largest probability."""
    method: str = "letter"
    continuation_bytes: list[int] = field(default_factory=list)

    @property
    def predicted_letter(self) -> str:
        return "ABCDEFGH"[self.predicted_index]


@dataclass
class _Sequence:
    """One forward pass: the token ids fed to the model and, per target, the
    (position, token) pairs whose log-probabilities are summed."""

    input_ids: list[int]
    targets: list[list[tuple[int, int]]]


# ---------------------------------------------------------------------------
# Pure parts: encoding, comparison scores
# ---------------------------------------------------------------------------


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's `_encode_pair`: trailing spaces of the context move
    to the continuation, and the continuation's tokens are what the whole string
    adds after the context's tokens."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return context_ids, whole[len(context_ids):]


def _left_truncate(ids: list[int], targets: list[list[tuple[int, int]]], max_len: int) -> _Sequence:
    """Keep the last `max_len` input tokens (the harness cuts contexts from the left)."""
    cut = max(0, len(ids) - max_len)
    if cut == 0:
        return _Sequence(ids, targets)
    shifted = [[(pos - cut, tok) for pos, tok in target if pos - cut >= 0] for target in targets]
    return _Sequence(ids[cut:], shifted)


def build_sequences(tokenizer, record: MCQRecord, method: str, max_len: int) -> list[_Sequence]:
    """The forward passes that score one record: one for letters whose continuations
    are single tokens, one per option otherwise."""
    if method == "letter":
        context, continuations = mcq_prompt(record.question, record.options), letter_continuations(len(record.options))
    elif method == "text":
        context, continuations = open_question_prompt(record.question), [f" {o.strip()}" for o in record.options]
    else:
        raise ValueError(f"unknown scoring method {method!r}; choose one of {METHODS}")
    pairs = [encode_pair(tokenizer, context, c) for c in continuations]
    if any(not cont for _, cont in pairs):
        raise ValueError(f"record {record.id or record.question[:40]!r}: an option encodes to no tokens")
    context_ids = pairs[0][0]
    if all(len(cont) == 1 for _, cont in pairs):
        # Every option is one token read at the same position: a single forward pass.
        last = len(context_ids) - 1
        return [_left_truncate(context_ids, [[(last, cont[0])] for _, cont in pairs], max_len)]
    sequences = []
    for ctx, cont in pairs:
        ids = ctx + cont
        # Token at position p is predicted by the logits at p - 1; the last token is never fed.
        target = [(len(ctx) + i - 1, tok) for i, tok in enumerate(cont)]
        sequences.append(_left_truncate(ids[:-1], [target], max_len))
    return sequences


def comparison_scores(loglikelihoods: Sequence[float], n_bytes: Sequence[int], method: str) -> list[float]:
    """What options are compared by. Letters: the log-likelihoods. Text: the
    log-likelihood per byte (harness ``acc_norm``), rescaled by the mean option
    length so the softmax over it has the scale of a whole option's
    log-likelihood (equal to the raw sums when all options are equally long)."""
    if method == "letter":
        return list(loglikelihoods)
    mean_bytes = sum(n_bytes) / len(n_bytes)
    return [ll / max(b, 1) * mean_bytes for ll, b in zip(loglikelihoods, n_bytes)]


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def make_score(loglikelihoods: list[float], n_bytes: list[int], method: str) -> MCQScore:
    probs = softmax(comparison_scores(loglikelihoods, n_bytes, method))
    best = max(range(len(probs)), key=probs.__getitem__)
    return MCQScore(loglikelihoods, probs, best, probs[best], method, n_bytes)


# ---------------------------------------------------------------------------
# Model parts
# ---------------------------------------------------------------------------


def _supports_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def context_length(model, tokenizer) -> int:
    """The model's context window (tokenizer limits are often a 1e30 sentinel)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", 2048)
    return limit if limit < 1_000_000 else 2048


def _score_batch(model, batch: list[_Sequence], pad_id: int, keep_logits: bool) -> list[list[float]]:
    """Summed log-probabilities of every target of every sequence in one forward pass."""
    import torch

    device = model_device(model)
    width = max(len(s.input_ids) for s in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):  # right padding: see the module docstring
        input_ids[row, : len(seq.input_ids)] = torch.tensor(seq.input_ids)
        mask[row, : len(seq.input_ids)] = 1
    positions = sorted({pos for seq in batch for target in seq.targets for pos, _ in target})
    kwargs = {}
    if keep_logits:
        # Project only the positions read onto the vocabulary: the full logits of a
        # batch would be batch x length x 49k floats.
        kwargs["logits_to_keep"] = torch.tensor(positions, device=device)
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False, **kwargs)
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    column = {pos: (i if keep_logits else pos) for i, pos in enumerate(positions)}
    results = []
    for row, seq in enumerate(batch):
        results.append(
            [sum(logprobs[row, column[pos], tok].item() for pos, tok in target) for target in seq.targets]
        )
    return results


def _run_sequences(model, tokenizer, sequences: list[_Sequence], batch_size: int, progress: bool,
                   sync_passes: Optional[Callable[[int], int]] = None) -> list[list[float]]:
    """Score sequences in batches of similar length (longest first, as the harness
    does, so a memory problem shows at once), returning results in input order.

    `sync_passes` maps this process's number of forward passes to the number every rank
    makes (their maximum): under ZeRO-3 each forward pass is a collective, so a rank with
    fewer batches repeats its last one, unread, until all have made the same number."""
    import torch

    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].input_ids))
    passes = -(-len(order) // batch_size)
    extra = (sync_passes(passes) - passes) if sync_passes else 0
    results: list[list[float]] = [[] for _ in sequences]
    pad_id, keep = pad_token_id(tokenizer), _supports_logits_to_keep(model)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(sequences), desc="scoring", unit="seq", dynamic_ncols=True)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, scores in zip(chunk, _score_batch(model, [sequences[i] for i in chunk], pad_id, keep), strict=True):
                results[i] = scores
            if bar is not None:
                bar.update(len(chunk))
        for _ in range(extra):
            _score_batch(model, [sequences[order[-1]]], pad_id, keep)
    if bar is not None:
        bar.close()
    return results


def score_records(
    model,
    tokenizer,
    records: list[MCQRecord],
    method: str = "letter",
    batch_size: int = 8,
    progress: bool = False,
    sync_passes: Optional[Callable[[int], int]] = None,
) -> list[MCQScore]:
    """Score every record's options; works with a base model, a 4-bit model or a PeftModel.

    Records need no answer (serving). The model is put in eval mode for the call
    and its previous mode restored (training eval calls this mid-run). In a distributed
    run, `sync_passes` makes every rank run the same number of forward passes (see
    `_run_sequences`); a rank then needs at least one record.
    """
    if method not in METHODS:
        raise ValueError(f"unknown scoring method {method!r}; choose one of {METHODS}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    max_len = context_length(model, tokenizer)
    per_record = [build_sequences(tokenizer, r, method, max_len) for r in records]
    flat = [seq for seqs in per_record for seq in seqs]
    with eval_mode(model):
        flat_scores = _run_sequences(model, tokenizer, flat, batch_size, progress, sync_passes)
    scores, cursor = [], 0
    for record, seqs in zip(records, per_record):
        lls = [ll for result in flat_scores[cursor : cursor + len(seqs)] for ll in result]
        cursor += len(seqs)
        n_bytes = [len(o.strip().encode("utf-8")) + 1 for o in record.options]  # + the leading space
        scores.append(make_score(lls, n_bytes, method))
    return scores


def mcq_accuracy(model, tokenizer, records: list[MCQRecord], method: str = "letter", batch_size: int = 8) -> float:
    """Fraction of records whose predicted option is the answer (for training eval)."""
    answered = [r for r in records if r.answer_index is not None]
    if not answered:
        raise ValueError("mcq_accuracy needs records with an answer_index")
    scores = score_records(model, tokenizer, answered, method=method, batch_size=batch_size)
    return sum(s.predicted_index == r.answer_index for s, r in zip(scores, answered)) / len(answered)


def continuation_loglikelihoods(
    model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 8, progress: bool = False
) -> list[tuple[float, int]]:
    """(summed log-probability, token count) of each continuation given its context:
    the harness's `loglikelihood` request, used for perplexity of reference texts."""
    max_len = context_length(model, tokenizer)
    sequences = []
    for context, continuation in pairs:
        ctx, cont = encode_pair(tokenizer, context, continuation)
        if not cont:
            raise ValueError(f"continuation {continuation[:40]!r} encodes to no tokens")
        target = [(len(ctx) + i - 1, tok) for i, tok in enumerate(cont)]
        sequences.append(_left_truncate((ctx + cont)[:-1], [target], max_len))
    with eval_mode(model):
        results = _run_sequences(model, tokenizer, sequences, batch_size, progress)
    return [(r[0], len(s.targets[0])) for r, s in zip(results, sequences)]


def last_logits(model, tokenizer, text: str) -> list[float]:
    """The model's logits at the last position of `text`: a fingerprint of its weights (the
    training probe and export compare a reloaded or merged model against the trained one)."""
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with eval_mode(model), torch.no_grad():
        return model(input_ids=ids.to(model_device(model))).logits[0, -1].float().cpu().tolist()
