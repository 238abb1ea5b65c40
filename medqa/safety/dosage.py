"""Dose statements: extract (drug, amount, unit, frequency, age) and check limits.

Limits live in `medqa/resources/safety/dosage_limits.json`. Flags:
  * above the adult maximum single, daily or weekly dose;
  * methotrexate (a once-weekly drug) written as daily or several times a week;
  * mg/mcg confusion for drugs prescribed in micrograms (levothyroxine 100 mg);
  * doses for children under 12 above the per-kg limit (weight estimated from age
    when not stated), or drugs given below their minimum age (codeine under 12).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

from medqa.safety.text import DrugLexicon, sentences

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "twenty": 20, "a couple of": 2, "half": 0.5}
_NUM_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
UNIT_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gm": 1000.0, "gram": 1000.0,
           "grams": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "μg": 0.001,
           "microgram": 0.001, "micrograms": 0.001}
DOSE_RE = re.compile(
    r"(?:(?P<count>\d+|" + _NUM_WORD + r")\s*(?:x|×|tablets? of|pills? of|capsules? of|tabs? of)\s*"
    r"|(?P<wcount>" + _NUM_WORD + r")\s+)?"
    r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>mg|milligrams?|mcg|µg|μg|ug|micrograms?|grams?|gm|g)\b"
    r"(?P<perkg>\s*(?:/|per)\s*kg)?")
# (regex, doses per day, kind). Order matters: specific schedules before bare "a day".
FREQUENCIES = [
    (r"\b(?:twice|two times) (?:a|per|each|every) week\b", 2 / 7, "weekly"),
    (r"\b(\d+|three|four|five|six) times (?:a|per|each) week\b", None, "weekly"),
    (r"\b(?:once (?:a|per|every|each) week|once[- ]weekly|weekly|(?:a|per|each|every) week|/ ?w(?:ee)?k)\b", 1 / 7, "weekly"),
    (r"\b(?:twice|two times) (?:a|per|each) day\b|\btwice daily\b|\bb\.?i\.?d\b|\bbd\b|\b12[- ]hourly\b", 2, "times"),
    (r"\b(?:three times|thrice) (?:a|per|each) day\b|\bthree times daily\b|\bt\.?i\.?d\b|\btds\b|\b8[- ]hourly\b", 3, "times"),
    (r"\bfour times (?:a|per|each) day\b|\bfour times daily\b|\bq\.?i\.?d\b|\bqds\b|\b6[- ]hourly\b", 4, "times"),
    (r"\b(\d+|five|six|eight|ten) times (?:a|per|each) day\b", None, "times"),
    (r"\bevery (\d+)(?:\s*(?:-|to)\s*\d+)?\s*(?:hours?|hrs?|h)\b|\bq(\d+)h\b", None, "hours"),
    (r"\b(?:every hour|hourly)\b", 24, "times"),
    (r"\b(?:once (?:a|per|each|every) day|once daily|od|qd|every (?:morning|night|evening)|at (?:night|bedtime)|nightly)\b", 1, "times"),
    (r"\b(?:daily|a day|per day|each day|every day|/ ?day|in (?:a|one) day|in 24 hours)\b", 1, "total"),
]
FREQ_RES = [(re.compile(p), n, kind) for p, n, kind in FREQUENCIES]
AGE_RES = [
    (re.compile(r"\b(\d+(?:\.\d+)?)[- ]?(?:years?|yrs?|yo|y/o)(?:[- ]old)?\b"), 1.0),
    (re.compile(r"\b(\d+(?:\.\d+)?)[- ]?(?:months?|mos?)[- ]old\b"), 1 / 12),
    (re.compile(r"\b(\d+(?:\.\d+)?)[- ]?(?:weeks?|wks?)[- ]old\b"), 1 / 52),
    (re.compile(r"\baged? (\d+(?:\.\d+)?)\b"), 1.0),
]
AGE_WORDS = [(re.compile(r"\b(?:newborn|neonate)\b"), 0.1), (re.compile(r"\b(?:baby|infant)\b"), 0.5),
             (re.compile(r"\btoddler\b"), 2.0)]
WEIGHT_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(kg|kilos?|kilograms?|lbs?|pounds)\b")
CHILD_AGE = 12
TOLERANCE = 1.25  # per-kg limits are rounded in practice; do not flag 16 mg/kg of paracetamol


@lru_cache(maxsize=1)
def limits() -> dict[str, dict]:
    path = resources.files("medqa.resources").joinpath("safety/dosage_limits.json")
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if not k.startswith("_")}


@dataclass
class Dose:
    drug: str
    amount: float
    unit: str
    text: str
    count: float = 1
    per_day: float | None = None
    schedule: str | None = None  # "times", "hours", "weekly" or "total" (amount is the daily total)
    per_kg: bool = False
    age_years: float | None = None
    weight_kg: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def single_mg(self) -> float:
        return self.amount * UNIT_MG[self.unit] * self.count

    @property
    def daily_mg(self) -> float | None:
        if self.schedule == "total":
            return self.single_mg
        return None if self.per_day is None else self.single_mg * self.per_day

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(single_mg=round(self.single_mg, 4), daily_mg=self.daily_mg)
        return out


def _number(s: str) -> float:
    return NUMBER_WORDS.get(s, None) or float(s)


def parse_frequency(text: str) -> tuple[float | None, str | None]:
    """Doses per day and schedule kind from the words after a dose."""
    for rx, n, kind in FREQ_RES:
        m = rx.search(text)
        if not m:
            continue
        if n is not None:
            return n, kind
        value = _number(next(g for g in m.groups() if g))
        return (24 / value, kind) if kind == "hours" else (value / 7 if kind == "weekly" else value, kind)
    return None, None


def parse_age(text: str) -> float | None:
    low = text.lower()
    for rx, scale in AGE_RES:
        m = rx.search(low)
        if m:
            return float(m.group(1)) * scale
    return next((age for rx, age in AGE_WORDS if rx.search(low)), None)


def parse_weight(text: str) -> float | None:
    m = WEIGHT_RE.search(text.lower())
    if not m:
        return None
    value = float(m.group(1))
    return value * 0.4536 if m.group(2).startswith(("lb", "pound")) else value


def estimated_weight(age: float) -> float:
    """APLS weight-for-age: infants months/2 + 4; 1-5 y 2*age + 8; 6-12 y 3*age + 7."""
    if age < 1:
        return age * 12 / 2 + 4
    return 2 * age + 8 if age <= 5 else 3 * age + 7


def extract_doses(text: str, lexicon: DrugLexicon, patient_context: dict | None = None) -> list[Dose]:
    """Every dose statement whose drug we can name, with its schedule and the
    patient's age/weight (from the text or `patient_context`)."""
    ctx = patient_context or {}
    low = text.lower()
    age = ctx.get("age_years", parse_age(low))
    weight = ctx.get("weight_kg", parse_weight(low))
    drugs = [m for m in lexicon.find(text) if m.name in limits()]
    doses = []
    for s0, s1 in sentences(low):
        matches = list(DOSE_RE.finditer(low, s0, s1))
        for i, m in enumerate(matches):
            drug = _nearest_drug(drugs, m.start(), m.end(), s0, s1)
            if drug is None:
                continue
            tail = low[m.end():matches[i + 1].start() if i + 1 < len(matches) else s1]
            doses.append(_dose(m, drug, tail, text, age, weight))
    return doses


def _dose(m: re.Match, drug: str, tail: str, text: str, age, weight) -> Dose:
    per_day, schedule = parse_frequency(tail)
    count = m.group("count") or m.group("wcount")
    return Dose(drug=drug, amount=float(m.group("amount")), unit=_unit(m.group("unit")),
                text=text[m.start():m.end()], count=_number(count) if count else 1,
                per_day=per_day, schedule=schedule, per_kg=bool(m.group("perkg")),
                age_years=age, weight_kg=weight)


def _unit(raw: str) -> str:
    return {"milligram": "mg", "milligrams": "mg", "gram": "g", "grams": "g", "gm": "g", "ug": "mcg",
            "µg": "mcg", "μg": "mcg", "microgram": "mcg", "micrograms": "mcg"}.get(raw, raw)


def _nearest_drug(drugs, start: int, end: int, s0: int, s1: int) -> str | None:
    """The closest drug in the same sentence: before the dose within 60 characters,
    else after it within 40 ("500 mg of paracetamol")."""
    before = [d for d in drugs if s0 <= d.end <= start and start - d.end <= 60]
    if before:
        return before[-1].name
    after = [d for d in drugs if end <= d.start < s1 and d.start - end <= 40]
    return after[0].name if after else None


def check_dose(dose: Dose) -> list[str]:
    """Reasons this dose is unsafe (empty when it is within limits)."""
    lim = limits()[dose.drug]
    if dose.per_kg:
        return []  # a per-kg statement is a rule, not a dose someone takes
    checks = (_unit_confusion, _weekly_drug, _adult_limits, _child_limits)
    return [w for check in checks for w in check(dose, lim)]


def _fmt(mg: float) -> str:
    return f"{mg * 1000:g} mcg" if mg < 1 else f"{mg:g} mg"


def _unit_confusion(dose: Dose, lim: dict) -> list[str]:
    if lim.get("usual_unit") != "mcg" or dose.unit not in ("mg", "g"):
        return []
    if dose.single_mg > lim["max_single_mg"] * 3 and dose.amount <= lim["max_single_mg"] * 1000:
        return [f"{dose.drug} is dosed in micrograms: {dose.text} = {dose.single_mg * 1000:g} mcg, over {dose.single_mg / lim['max_single_mg']:.0f}x the "
                f"usual maximum of {_fmt(lim['max_single_mg'])}; did you mean {dose.amount:g} mcg?"]
    return []


def _weekly_drug(dose: Dose, lim: dict) -> list[str]:
    if lim.get("schedule") != "weekly":
        return []
    out = []
    if dose.per_day is not None and dose.per_day > 1 / 7 + 1e-9:
        out.append(f"{dose.drug} for arthritis or psoriasis is taken ONCE A WEEK; taking it "
                   f"{_schedule_words(dose)} has caused fatal overdoses")
    weekly = dose.single_mg * (7 * dose.per_day if dose.per_day else 1)
    if weekly > lim["max_weekly_mg"]:
        out.append(f"{dose.drug} {_fmt(weekly)} a week exceeds the usual maximum of "
                   f"{_fmt(lim['max_weekly_mg'])} a week")
    return out


def _schedule_words(dose: Dose) -> str:
    if dose.schedule == "weekly":
        return f"{dose.per_day * 7:g} times a week"
    return "daily" if dose.per_day in (None, 1) else f"{dose.per_day:g} times a day"


def _adult_limits(dose: Dose, lim: dict) -> list[str]:
    if lim.get("schedule") == "weekly" or _unit_confusion(dose, lim):
        return []
    out = []
    note = f" ({lim['note']})" if lim.get("note") else ""
    if dose.schedule != "total" and dose.single_mg > lim["max_single_mg"] + 1e-9:
        out.append(f"{dose.drug} {_fmt(dose.single_mg)} per dose exceeds the adult maximum "
                   f"single dose of {_fmt(lim['max_single_mg'])}{note}")
    daily = dose.daily_mg
    if daily is not None and daily > lim["max_daily_mg"] + 1e-9:
        out.append(f"{dose.drug} {_fmt(daily)} a day exceeds the adult maximum of "
                   f"{_fmt(lim['max_daily_mg'])} a day{note}")
    return out


def _child_limits(dose: Dose, lim: dict) -> list[str]:
    age = dose.age_years
    if age is None or age >= CHILD_AGE:
        return []
    child = lim.get("child", {})
    if age < child.get("min_age_years", 0):
        why = child.get("why", f"{dose.drug} is not for children under {child['min_age_years']:g}")
        return [f"{why}; the child is {_age_words(age)}"]
    weight = dose.weight_kg or estimated_weight(age)
    how = "" if dose.weight_kg else " (estimated from age)"
    if "mg_per_kg_dose" in child and dose.schedule != "total":
        limit = child["mg_per_kg_dose"] * weight
        if dose.single_mg > limit * TOLERANCE:
            return [f"{_fmt(dose.single_mg)} of {dose.drug} is {dose.single_mg / weight:.0f} mg/kg for a "
                    f"{weight:.0f} kg{how} child of {_age_words(age)}: the limit is "
                    f"{child['mg_per_kg_dose']:g} mg/kg per dose (about {_fmt(limit)}); this looks like an adult dose"]
    if "mg_per_kg_day" in child and dose.daily_mg is not None:
        limit = child["mg_per_kg_day"] * weight
        if dose.daily_mg > limit * TOLERANCE:
            return [f"{_fmt(dose.daily_mg)} a day of {dose.drug} exceeds {child['mg_per_kg_day']:g} mg/kg a day "
                    f"(about {_fmt(limit)}) for a {weight:.0f} kg{how} child of {_age_words(age)}"]
    if not child and dose.single_mg >= lim["max_single_mg"] / 2:
        return [f"{_fmt(dose.single_mg)} of {dose.drug} is an adult-range dose for a child of "
                f"{_age_words(age)}; children need weight-based dosing"]
    return []


def _age_words(age: float) -> str:
    return f"{age * 12:.0f} months" if age < 2 else f"{age:g} years"


def check_dosage(text: str, lexicon: DrugLexicon, patient_context: dict | None = None) -> list[dict]:
    """Dose statements in `text` that break a limit, each with its warnings."""
    flagged = []
    for dose in extract_doses(text, lexicon, patient_context):
        dose.warnings = check_dose(dose)
        if dose.warnings:
            flagged.append(dose.as_dict())
    return flagged
