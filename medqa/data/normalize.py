"""Text normalisation, duplicate keys and near-duplicate detection (MinHash + LSH).

Near-duplicates: two rows are near-duplicates when the Jaccard similarity of
the word 3-gram sets of their normalised "question | sorted options" text is
at least the threshold. Candidates come from MinHash LSH (`n_perm` hashes cut
into bands of `BAND_ROWS`), so the work is linear in the number of rows, not
quadratic; every candidate is then checked with the exact Jaccard, so there
are no false positives. The band count is chosen so that a pair exactly at the
threshold is found with probability >= 0.9999 (more similar pairs even more
surely; capped at 64 bands, which keeps that guarantee down to a threshold of
about 0.65).

Keep-first: rows are visited in source order and a row is dropped when it
duplicates a row already kept, so the result does not depend on batching.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
import unicodedata
import zlib
from typing import Iterable, Optional

import numpy as np

from medqa.data.record import MCQRecord

BAND_ROWS = 5
MAX_BANDS = 64
SHINGLE = 3
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014\u00b7\u2026]")
# Fixed (seeded) hash family: signatures must agree across processes and runs.
_RNG = np.random.default_rng(20240611)
_A = (_RNG.integers(1, 2**63, size=MAX_BANDS * BAND_ROWS, dtype=np.uint64) | np.uint64(1))
_B = _RNG.integers(0, 2**63, size=MAX_BANDS * BAND_ROWS, dtype=np.uint64)


def normalise_text(text: str) -> str:
    """Display form: NFKC (full-width letters, ligatures) and single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def normalise_record(record: MCQRecord) -> MCQRecord:
    record.question = normalise_text(record.question)
    record.options = [normalise_text(o) for o in record.options]
    record.explanation = normalise_text(record.explanation)
    record.subject = normalise_text(record.subject) or "Unknown"
    record.topic = normalise_text(record.topic)
    return record


def question_key(text: str) -> str:
    """Matching form: case-, whitespace- and punctuation-insensitive (contamination, dedup)."""
    text = _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def hash64(text: str) -> int:
    """Stable signed 64-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def exact_key(question: str, options: Iterable[str]) -> int:
    """Same question and same option set (in any order), ignoring case/space/punctuation."""
    return row_keys(question, options)[1]


def row_keys(question: str, options: Iterable[str]) -> tuple[str, int, str]:
    """(question key, exact key, shingle text) with one normalisation pass per text."""
    qkey = question_key(question)
    okeys = sorted(question_key(o) for o in options)
    return qkey, hash64(qkey + "\x1f" + "\x1e".join(okeys)), qkey + " | " + " | ".join(okeys)


def shingle_text(question: str, options: Iterable[str]) -> str:
    return row_keys(question, options)[2]


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads combined hashes over all 64 bits (uint64 arrays wrap silently)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


_M = (np.random.default_rng(7).integers(1, 2**63, size=8, dtype=np.uint64) | np.uint64(1))


def shingles(text: str, k: int = SHINGLE) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word k-grams (the whole text if shorter).

    Words are hashed once (crc32, stable across processes) and k-grams combined
    in numpy: about 10x faster than hashing every k-gram string."""
    words = text.split() or [""]
    w = np.fromiter((zlib.crc32(x.encode("utf-8")) for x in words), dtype=np.uint64, count=len(words))
    n = max(1, len(w) - k + 1)
    h = sum(w[j:j + n] * _M[j] for j in range(min(k, len(w))))
    return np.unique(_mix(h)).view(np.int64)


def n_bands(threshold: float) -> int:
    """Bands so that P(candidate | Jaccard = threshold) >= 0.9999."""
    p = threshold ** BAND_ROWS
    if p >= 1.0:
        return 1
    return int(min(MAX_BANDS, max(4, math.ceil(math.log(1e-4) / math.log1p(-p)))))


def band_keys(shingle_hashes: np.ndarray, bands: int) -> list[int]:
    """MinHash signature (multiply-shift hashes, uint64 wrap-around) cut into band keys."""
    h = shingle_hashes.view(np.uint64)[:, None]
    n = bands * BAND_ROWS
    sig = ((h * _A[None, :n] + _B[None, :n]) >> np.uint64(32)).min(axis=0).reshape(bands, BAND_ROWS)
    # Band index salts its key so equal values in different bands do not collide.
    key = _mix(sig @ _M[:BAND_ROWS] + np.arange(1, bands + 1, dtype=np.uint64))
    return key.view(np.int64).tolist()


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if (a.size or b.size) else 1.0


class NearDupIndex:
    """Keep-first near-duplicate filter over rows visited in order."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.buckets: dict[int, list[int]] = {}
        self.kept: dict[int, np.ndarray] = {}

    def add(self, row_id: int, shingle_hashes: np.ndarray, bands: list[int]) -> Optional[int]:
        """Return the id of the kept row this one duplicates, or None (then it is kept)."""
        seen: set[int] = set()
        for key in bands:
            for other in self.buckets.get(key, ()):
                if other not in seen:
                    seen.add(other)
                    if jaccard(shingle_hashes, self.kept[other]) >= self.threshold:
                        return other
        self.kept[row_id] = shingle_hashes
        for key in bands:
            self.buckets.setdefault(key, []).append(row_id)
        return None
