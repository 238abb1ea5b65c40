"""Option-shuffling augmentation that keeps the answer on the same text and
balances answer positions.

With factor k each training row yields k versions (factor 1 = the row as is).
The answer position of every version is *planned* first (`plan_targets`, a
cheap sequential pass over all rows): a version puts the answer where the
running count is lowest, so with k >= 2 the four positions end up within a
few rows of 25% each whatever the source skew (MedMCQA dev: A 32%, D 20%;
even a file whose answers are all A). The first version keeps the source
order whenever that does not unbalance the counts (so with mild skew most
rows are seen once as written). The remaining options are shuffled with a
generator seeded by (seed, row id, version), so a copy is reproducible on any
worker.

Options whose position carries meaning are respected:
- "All/None of the above", "Both of the above", "All of these" refer to the
  options before them, so such an option stays in its slot and only the
  others move (the answer can still move when it is one of the others);
- options naming other options by letter ("A and B", "Both a & c", "Only B")
  make the row unshufflable: it is kept once, unaugmented.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Optional, Sequence

from medqa.data.record import MCQRecord

_ANCHOR = re.compile(r"\b(all|none|both|neither|either)\s+(of\s+)?(the\s+)?(above|these|the following)\b", re.I)
_LETTER_REF = re.compile(r"^\W*(only\s+|both\s+)?\(?[a-d]\)?\s*(,|and|&|or|\+)\s*\(?[a-d]\)?\W*"
                         r"(\b(and|&|,)\s*\(?[a-d]\)?\W*)*$"
                         r"|^\W*only\s+\(?[a-d]\)?\W*$", re.I)


def fixed_slots(options: Sequence[str]) -> Optional[frozenset[int]]:
    """Slots that must not move; None when the row cannot be shuffled at all."""
    if any(_LETTER_REF.match(o.strip()) for o in options):
        return None
    return frozenset(i for i, o in enumerate(options) if _ANCHOR.search(o))


def allowed_targets(options: Sequence[str], answer: int) -> list[int]:
    """Positions the answer may take in a shuffled copy ([] = no copies)."""
    fixed = fixed_slots(options)
    if fixed is None:
        return []
    if answer in fixed:
        return [answer]
    free = [i for i in range(len(options)) if i not in fixed]
    return free if len(free) > 1 else []


def plan_targets(rows: Sequence[tuple[int, list[int]]], factor: int, seed: int) -> list[list[int]]:
    """For each row (answer position, allowed targets) the answer positions of its versions.

    Greedy: each version takes the allowed position with the lowest running
    count, preferring positions this row has not used yet; the first version
    stays where the source put the answer unless that position is already
    ahead of the least-filled one. Ties are broken by a seeded generator so no
    letter is favoured. Unshufflable rows keep one version, as written.
    """
    rng = random.Random(seed)
    counts = [0, 0, 0, 0]
    plans: list[list[int]] = []
    for answer, allowed in rows:
        plan: list[int] = []
        if factor > 1 and allowed:
            for _ in range(factor):
                unused = [p for p in allowed if p not in plan] or allowed
                low = min(counts[p] for p in unused)
                if not plan and answer in unused and counts[answer] <= low:
                    pick = answer
                else:
                    pick = rng.choice([p for p in unused if counts[p] == low])
                counts[pick] += 1
                plan.append(pick)
        else:
            counts[answer] += 1
            plan.append(answer)
        plans.append(plan)
    return plans


def permute_to(record: MCQRecord, target: int, rng: random.Random) -> MCQRecord:
    """A copy with the answer moved to `target` and the other movable options shuffled."""
    n = len(record.options)
    fixed = fixed_slots(record.options) or frozenset()
    order: list[Optional[int]] = [i if i in fixed else None for i in range(n)]
    order[target] = record.answer_index
    rest = [i for i in range(n) if i not in fixed and i != record.answer_index]
    rng.shuffle(rest)
    slots = [s for s in range(n) if order[s] is None]
    for slot, src in zip(slots, rest):
        order[slot] = src
    return replace(record, options=[record.options[i] for i in order], answer_index=target,
                   extra=dict(record.extra))


def copy_rng(seed: int, record_id: str, copy: int) -> random.Random:
    return random.Random(f"{seed}:{record_id}:{copy}")


def expand(record: MCQRecord, targets: Sequence[int], seed: int) -> list[MCQRecord]:
    """One version per planned target: the first keeps the record's id (and its
    option order when its target is the source position), the others are `<id>#aug<j>`."""
    out = []
    for j, target in enumerate(targets or [record.answer_index]):
        if j == 0 and target == record.answer_index:
            out.append(record)
            continue
        copy = permute_to(record, target, copy_rng(seed, record.id, j))
        if j:
            copy.id = f"{record.id}#aug{j}"
        out.append(copy)
    return out


def augment_records(records: Sequence[MCQRecord], factor: int, seed: int) -> list[MCQRecord]:
    """Convenience for in-memory use: plan, then expand every record."""
    plans = plan_targets([(r.answer_index, allowed_targets(r.options, r.answer_index)) for r in records],
                         factor, seed)
    return [c for r, p in zip(records, plans) for c in expand(r, p, seed)]


def position_counts(answers: Sequence[int]) -> dict[str, int]:
    counts = {letter: 0 for letter in "ABCD"}
    for a in answers:
        counts["ABCD"[a]] += 1
    return counts
