"""Validation of raw rows: every row becomes an `MCQRecord` or a `Rejection` with a reason.

Two raw schemas are understood, detected per row:

- MedMCQA (hub schema): `question, opa, opb, opc, opd, cop, exp, subject_name,
  topic_name, choice_type, id`. `cop` counts from 0 on the hub and from 1 in
  the original release; the caller passes the base (see `sources.detect_cop_base`).
- MedQA-USMLE: `question, options` (a dict `{"A": .., "D": ..}` or a list),
  `answer_idx` (a letter), optional `answer` (the answer text, cross-checked)
  and `meta_info`. The 5-option variant (A-E) is rejected with reason
  `unsupported_option_count`: a fifth option cannot be dropped without
  possibly dropping the answer, and the model is trained on four.

Pure functions, no I/O: unit-tested in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from medqa.data.record import LETTERS, MCQRecord

# Every reason a row can be rejected for; tests cover each one.
REASONS = {
    "unparseable": "the line or row could not be parsed as an object",
    "missing_question": "no `question` field",
    "blank_question": "the question is empty or whitespace",
    "missing_option": "an option field is absent",
    "blank_option": "an option is empty or whitespace",
    "duplicate_options": "two options have the same text (ignoring case and whitespace)",
    "unsupported_option_count": "not exactly four options (e.g. the 5-option MedQA variant)",
    "missing_answer": "no answer field (`cop` / `answer_idx`)",
    "answer_not_integer": "the answer index is not an integer (or not a letter A-D for MedQA)",
    "answer_out_of_range": "the answer index does not point at one of the four options",
    "answer_mismatch": "MedQA `answer` text differs from the option `answer_idx` points at",
    "question_too_long": "the question is longer than data.max_question_chars",
    "option_too_long": "an option is longer than data.max_option_chars",
}

MEDMCQA_OPTION_KEYS = ("opa", "opb", "opc", "opd")


@dataclass
class Limits:
    max_question_chars: int = 4000
    max_option_chars: int = 1000

    @classmethod
    def from_config(cls, data_cfg: Any) -> "Limits":
        return cls(data_cfg.max_question_chars, data_cfg.max_option_chars)


@dataclass
class Rejection:
    reason: str
    """One of `REASONS`."""
    detail: str = ""
    line_no: int = 0
    """1-based line (jsonl) or row number (other formats) in the source."""
    raw: Any = None
    """The raw line (str) or row (dict) exactly as read: nothing is lost."""
    source: str = ""

    def to_dict(self) -> dict:
        return {"reason": self.reason, "detail": self.detail, "line_no": self.line_no,
                "source": self.source, "raw": self.raw}


class RowError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class Row:
    """A raw row after schema detection, before validation."""

    question: Any
    options: list
    answer: Any
    fields: dict = field(default_factory=dict)


def _text(value: Any) -> str:
    """Optional text field: None / NaN (pandas, parquet) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def is_medqa_row(row: dict) -> bool:
    return "options" in row and not any(k in row for k in MEDMCQA_OPTION_KEYS)


def _from_medmcqa(row: dict) -> Row:
    missing = [k for k in MEDMCQA_OPTION_KEYS if k not in row]
    if missing:
        raise RowError("missing_option", f"no field {', '.join(missing)}")
    fields = {"id": _text(row.get("id")), "explanation": _text(row.get("exp")),
              "subject": _text(row.get("subject_name")) or "Unknown",
              "topic": _text(row.get("topic_name")),
              "choice_type": _text(row.get("choice_type")) or "single"}
    return Row(row.get("question"), [row[k] for k in MEDMCQA_OPTION_KEYS], row.get("cop"), fields)


def _from_medqa(row: dict) -> Row:
    options = row["options"]
    if isinstance(options, dict):
        keys = sorted(options)
        if keys != list(LETTERS):
            raise RowError("unsupported_option_count", f"option keys {keys}, expected A-D")
        options = [options[k] for k in LETTERS]
    elif isinstance(options, list):
        if len(options) != 4:
            raise RowError("unsupported_option_count", f"{len(options)} options, expected 4")
        # HF-style list of {"key": "A", "value": ...} or plain strings.
        options = [o.get("value") if isinstance(o, dict) else o for o in options]
    else:
        raise RowError("missing_option", f"`options` is a {type(options).__name__}, not a dict or list")
    letter = row.get("answer_idx")
    answer: Any = None
    if isinstance(letter, str) and letter.strip():
        letter = letter.strip().upper()
        if letter not in LETTERS:
            raise RowError("answer_out_of_range" if letter.isalpha() else "answer_not_integer",
                           f"answer_idx {row.get('answer_idx')!r} is not one of A-D")
        answer = LETTERS.index(letter)
    elif letter is not None:
        answer = letter  # let the integer checks explain what is wrong
    meta = _text(row.get("meta_info"))
    fields = {"id": _text(row.get("id")), "explanation": _text(row.get("explanation")),
              "subject": _text(row.get("subject")) or "USMLE",
              "topic": meta, "choice_type": "single", "answer_text": row.get("answer")}
    return Row(row.get("question"), options, answer, fields)


def detect_row(row: dict) -> Row:
    if not isinstance(row, dict):
        raise RowError("unparseable", f"a {type(row).__name__}, not an object")
    if "question" not in row:
        raise RowError("missing_question")
    return _from_medqa(row) if is_medqa_row(row) else _from_medmcqa(row)


def answer_index(value: Any, base: int = 0) -> int:
    """The 0-based index from a raw answer; ints, integral floats and digit strings (CSV) pass."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        raise RowError("missing_answer")
    if isinstance(value, bool):
        raise RowError("answer_not_integer", f"{value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise RowError("answer_not_integer", f"{value!r}") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise RowError("answer_not_integer", f"{value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise RowError("answer_not_integer", f"{type(value).__name__} {value!r}")
    index = value - base
    if not 0 <= index < 4:
        raise RowError("answer_out_of_range", f"{value} with base {base} (options A-D)")
    return index


def option_key(text: str) -> str:
    """Case- and whitespace-insensitive key for duplicate-option checks."""
    return " ".join(text.casefold().split())


def check_texts(question: Any, options: list, limits: Limits) -> tuple[str, list[str]]:
    if question is None or (isinstance(question, float) and math.isnan(question)):
        raise RowError("missing_question", "question is null")
    question = str(question).strip()
    if not question:
        raise RowError("blank_question")
    if len(question) > limits.max_question_chars:
        raise RowError("question_too_long", f"{len(question)} > {limits.max_question_chars} chars")
    texts = []
    for letter, value in zip(LETTERS, options):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise RowError("missing_option", f"option {letter} is null")
        text = str(value).strip()
        if not text:
            raise RowError("blank_option", f"option {letter}")
        if len(text) > limits.max_option_chars:
            raise RowError("option_too_long", f"option {letter}: {len(text)} > {limits.max_option_chars} chars")
        texts.append(text)
    keys = [option_key(t) for t in texts]
    if len(set(keys)) < 4:
        dups = sorted({LETTERS[i] for i, k in enumerate(keys) if keys.count(k) > 1})
        raise RowError("duplicate_options", f"options {'/'.join(dups)} are the same")
    return question, texts


def to_record(row: Any, cop_base: int = 0, limits: Optional[Limits] = None, source: str = "") -> MCQRecord:
    """Validate one raw row and build its record, or raise `RowError` with the reason."""
    limits = limits or Limits()
    parsed = detect_row(row)
    question, options = check_texts(parsed.question, parsed.options, limits)
    base = 0 if is_medqa_row(row) else cop_base  # MedQA letters were already mapped to 0-3
    index = answer_index(parsed.answer, base)
    fields = dict(parsed.fields)
    answer_text = fields.pop("answer_text", None)
    if answer_text is not None and option_key(str(answer_text)) != option_key(options[index]):
        raise RowError("answer_mismatch", f"answer {str(answer_text)[:60]!r} vs option {LETTERS[index]}")
    return MCQRecord(question=question, options=options, answer_index=index, source=source, **fields)


def validate_row(row: Any, cop_base: int = 0, limits: Optional[Limits] = None,
                 source: str = "", line_no: int = 0) -> Union[MCQRecord, Rejection]:
    try:
        return to_record(row, cop_base, limits, source)
    except RowError as err:
        return Rejection(err.reason, err.detail, line_no, row, source)
