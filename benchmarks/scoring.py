"""Batched vs one-by-one multiple-choice scoring throughput (same model, same questions, one run).

    .venv/bin/python benchmarks/scoring.py --data ../shared/data/medmcqa_dev_public.jsonl --n 96

Variants, each timed after one warm-up pass on a few questions:
- `one_by_one` (baseline): the straightforward scorer: for every (question, option)
  pair one unbatched forward over prompt + " A" (4 passes per question), full-vocabulary
  log-softmax over every position, read the last one.
- `scorer_bs1`: `medqa.modeling.scoring.score_records`, batch size 1: one forward per
  question (the four letters are single tokens read at the same position) and only
  that position projected onto the vocabulary.
- `scorer_bsN`: the same with batches of N questions (right padding + attention mask).

Reports questions per second, the speed-up over the baseline, and whether every variant
picks the same options (they must: same log-likelihoods up to float noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one_by_one(model, tokenizer, records) -> list[int]:
    import torch

    from medqa.data.prompts import letter_continuations, mcq_prompt

    predictions = []
    with torch.inference_mode():
        for record in records:
            prompt = mcq_prompt(record.question, record.options)
            n_ctx = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            lls = []
            for cont in letter_continuations():
                ids = tokenizer(prompt + cont, add_special_tokens=False)["input_ids"]
                logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
                lls.append(sum(logprobs[p - 1, ids[p]].item() for p in range(n_ctx, len(ids))))
            predictions.append(max(range(4), key=lls.__getitem__))
    return predictions


def scorer(batch_size: int):
    def run(model, tokenizer, records) -> list[int]:
        from medqa.modeling.scoring import score_records

        return [s.predicted_index for s in score_records(model, tokenizer, records, batch_size=batch_size)]

    return run


def timed(fn, model, tokenizer, records) -> tuple[float, list[int]]:
    fn(model, tokenizer, records[:4])  # warm-up: first-call allocations, thread pools
    start = time.perf_counter()
    predictions = fn(model, tokenizer, records)
    return time.perf_counter() - start, predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="sample")
    parser.add_argument("--n", type=int, default=96, help="questions timed per variant")
    parser.add_argument("--batch-sizes", default="8,16")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from medqa.data.sources import read_records
    from medqa.modeling.loading import load_model, load_tokenizer

    records = [r for r in read_records(args.data)[0] if r.answer_index is not None][: args.n]
    model, tokenizer = load_model(_cfg(args.model)), load_tokenizer(_cfg(args.model))
    model.eval()
    variants = {"one_by_one": one_by_one, "scorer_bs1": scorer(1)}
    variants.update({f"scorer_bs{b}": scorer(int(b)) for b in args.batch_sizes.split(",")})
    results, reference = {}, None
    for name, fn in variants.items():
        seconds, predictions = timed(fn, model, tokenizer, records)
        reference = reference or predictions
        results[name] = dict(seconds=round(seconds, 2), questions_per_s=round(len(records) / seconds, 2),
                             same_predictions_as_baseline=predictions == reference)
        print(f"{name:>14}: {seconds:7.2f} s  {len(records) / seconds:6.2f} q/s", file=sys.stderr)
    base = results["one_by_one"]["questions_per_s"]
    for row in results.values():
        row["speedup_vs_one_by_one"] = round(row["questions_per_s"] / base, 2)
    summary = dict(model=args.model, data=args.data, n=len(records), torch_threads=torch.get_num_threads(),
                   results=results)
    print(json.dumps(summary))
    return 0


def _cfg(name: str):
    from medqa.config import ModelConfig

    return ModelConfig(name=name, load_in_4bit=False)


if __name__ == "__main__":
    raise SystemExit(main())
