"""The one normalised multiple-choice record every reader produces and every
consumer (pipeline, training, evaluation, serving) takes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

LETTERS = "ABCD"


@dataclass
class MCQRecord:
    question: str
    options: list[str]
    """Exactly four option texts, in display order A-D."""
    answer_index: Optional[int] = None
    """0-based index of the correct option; None when unknown (serving)."""
    id: str = ""
    explanation: str = ""
    subject: str = "Unknown"
    topic: str = ""
    choice_type: str = "single"
    source: str = ""
    """Where the row came from (file or hub id), for reports."""
    extra: dict = field(default_factory=dict)

    @property
    def answer_letter(self) -> Optional[str]:
        return None if self.answer_index is None else LETTERS[self.answer_index]

    @property
    def answer_text(self) -> Optional[str]:
        return None if self.answer_index is None else self.options[self.answer_index]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "MCQRecord":
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        return cls(**known)
