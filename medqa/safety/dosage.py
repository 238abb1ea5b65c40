"""Dose statements: extract (drug, amount, unit, frequency, age) and check limits.

Limits live in `medqa/resources/safety/dosage_limits.json`. Flags:
  * above the adult maximum single, daily or weekly dose;
  * a stated daily maximum ("no more than 4 g in 24 hours") above the adult limit;
    a stated maximum within the limit is what the daily check of the regimen uses;
  * single doses of one drug that add up past the daily limit across clauses
    ("1 g in the morning ... another 1 g at lunch ..."), alternatives ("500 mg or
    1 g") counted once;
  * methotrexate (a once-weekly drug) written as daily or several times a week;
  * mg/mcg confusion for drugs prescribed in micrograms (levothyroxine 100 mg);
  * doses for children under 12 above the per-kg limit (weight estimated from age
    when not stated), or drugs given below their minimum age (codeine under 12).

Age and weight come from the `PatientContext` when given, else from the text.
Every number read from text is bounded, so no input makes a check raise or
report an infinite dose.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

from medqa.safety.context import PatientContext, as_context
from medqa.safety.lexicon import DrugLexicon, DrugMention
from medqa.safety.text import sentences

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "twenty": 20, "a couple of": 2, "half": 0.5}
_NUM_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
UNIT_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gm": 1000.0, "gram": 1000.0,
           "grams": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "μg": 0.001,
           "microgram": 0.001, "micrograms": 0.001}
_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"  # "1,000 mg" is a thousand, not "000 mg"
_UNIT = r"mg|milligrams?|mcg|µg|μg|ug|micrograms?|grams?|gm|g"
_TABLETS = r"tablets?|caplets?|capsules?|pills?|tabs?"
# The lookbehind keeps "1e308 mg" from reading as 308 mg and makes long digit runs linear.
DOSE_RE = re.compile(
    r"(?<![\w.,])(?:(?P<count>\d+|" + _NUM_WORD + r")\s*(?:x|×|(?:" + _TABLETS + r") of)\s*"
    r"|(?P<wcount>" + _NUM_WORD + r")\s+)?"
    r"(?P<amount>" + _AMOUNT + r")\s*(?P<unit>" + _UNIT + r")\b"
    r"(?P<perkg>\s*(?:/|per)\s*kg)?")
# (regex, doses per day, kind). Order matters: specific schedules before bare "a day".
FREQUENCIES = [
    (r"\b(?:twice|two times) (?:a|per|each|every) week\b", 2 / 7, "weekly"),
    (r"\b(\d+|three|four|five|six) times (?:a|per|each) week\b", None, "weekly"),
    (r"\b(?:once (?:a|per|every|each) week|once[- ]weekly|weekly|(?:a|per|each|every) week"
     r"|/ ?w(?:ee)?k)\b", 1 / 7, "weekly"),
    (r"\b(?:twice|two times) (?:a|per|each) day\b|\btwice daily\b|\bb\.?i\.?d\b|\bbd\b|\b12[- ]hourly\b", 2, "times"),
    (r"\b(?:three times|thrice) (?:a|per|each) day\b|\bthree times daily\b"
     r"|\bt\.?i\.?d\b|\btds\b|\b8[- ]hourly\b", 3, "times"),
    (r"\bfour times (?:a|per|each) day\b|\bfour times daily\b|\bq\.?i\.?d\b|\bqds\b|\b6[- ]hourly\b", 4, "times"),
    (r"\b(\d+|five|six|eight|ten) times (?:a|per|each) day\b", None, "times"),
    (r"\bevery (\d+)(?:\s*(?:-|to)\s*\d+)?\s*(?:hours?|hrs?|h)\b|\bq(\d+)h\b", None, "hours"),
    (r"\b(?:every hour|hourly)\b", 24, "times"),
    (r"\b(?:once (?:a|per|each|every) day|once daily|od|qd|every (?:morning|night|evening)"
     r"|at (?:night|bedtime)|nightly)\b", 1, "times"),
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
# A stated daily maximum: "no more than 8 tablets (4 g) in 24 hours", "max 4 g/day",
# "maximum daily dose is 4 g". The body may not hold a schedule ("up to 1 g four
# times a day" is a dose, not a cap).
_CAP_WORDS = (r"(?:no|not|never) more than|do not exceed|don'?t exceed|not to exceed|never exceed"
              r"|maximum(?: of)?|max\.?|up to|at most")
_PER_DAY = (r"\s*(?:\b(?:in|per|a|each|every|within) (?:any |a |one )?(?:24|twenty[- ]four) ?(?:hours?|hrs?|h)\b"
            r"|\b(?:a|per|each|every) day\b|\bdaily\b|\bin (?:a|one) day\b|/ ?(?:day|24 ?h)\b)")
CAP_RES = [
    re.compile(r"\b(?:" + _CAP_WORDS + r")\b(?P<body>[^.;!?\n,]{0,50}?)" + _PER_DAY),
    re.compile(r"\b(?:max(?:imum)?|highest|total) (?:daily|24[- ]hours?|per day) (?:dose|amount|intake|total)\b"
               r"(?P<body>[^.;!?\n\d]{0,40}(?:" + _AMOUNT + r")\s*(?:" + _UNIT + "|" + _TABLETS + r")\b)"),
]
CAP_SCHEDULE_RE = re.compile(r"\b(?:times|every|twice|thrice|hourly)\b")
TABLET_AFTER_RE = re.compile(r"\s*(?:" + _TABLETS + r")\b")  # "500 mg tablets": the strength of one
TABLET_COUNT_RE = re.compile(r"(?<![\w.,])(?P<n>\d+|" + _NUM_WORD + r")\s*(?:" + _TABLETS + r")\b")
RANGE_GAP_RE = re.compile(r"\s*(?:-|–|—|to)\s*")
OF_RE = re.compile(r"\s*(?:of|of the|of your)\s+")
# Summing single administrations: what makes a dose not one.
THRESHOLD_RE = re.compile(r"(?:(?:more|less|fewer) than|over|above|below|under|exceed(?:s|ing)?|at (?:most|least)|"
                          r"up to|limit(?: of| is)?|max(?:imum)?(?: of| is| dose(?: is)?)?|min(?:imum)?(?: of| is)?|"
                          r"beyond)\s*$")
STRENGTH_RE = re.compile(r"\s*(?:tablets|capsules|caplets|pills|sachets|suppositories|patches|vials|ampoules|"
                         r"strengths?|formulations?|versions?|preparations?)\b")
DESCRIPTION_RE = re.compile(r"\b(?:comes? (?:in|as)|available (?:in|as)|strengths|formulations|sold as|sizes)\b")
ALT_RE = re.compile(r"\b(?:or|instead|alternatively|otherwise|either)\b")
BARE_GAP_RE = re.compile(r"[\s,;/]*(?:(?:or|and/or)[\s,]*)?")
DAY_RE = re.compile(r"\b(?:yesterday|today|tomorrow|"
                    r"(?:the )?(?:next|following|previous|other) (?:day|morning|night|evening)|"
                    r"the day (?:after|before)|day (?:\d+|one|two|three)|(?:mon|tues|wednes|thurs|fri|satur|sun)day)\b")
# A dose in a sentence naming no drug continues the previous one only when it says so.
CONTINUE_RE = re.compile(r"\b(?:another|more|again|same|second|third|extra|further)\b")
BARE_CAP_RE = re.compile(r"\s*(?:\([^)]*\)\s*)?(?:in|per|a|each|every|within|daily|/)")
PACK_RE = re.compile(r"\b(?:pack|packet|box|bottle|blister|strip|tub|container)s? of\s*$|\bcontains?\s*$")
CHILD_AGE = 12
CHILD_WEIGHT = 40  # kg; with no age, a lighter patient is dosed per kg like a child (APLS weight at 11 years)
TOLERANCE = 1.25  # per-kg limits are rounded in practice; do not flag 16 mg/kg of paracetamol
MAX_AMOUNT, MAX_COUNT, MAX_PER_DAY = 1e6, 1e3, 1440.0  # bounds on numbers read from text
MAX_AGE, MAX_WEIGHT = 130, 500
MAX_QUOTE = 120  # characters of the text quoted in a Dose


@lru_cache(maxsize=1)
def _resource() -> dict:
    path = resources.files("medqa.resources").joinpath("safety/dosage_limits.json")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def limits() -> dict[str, dict]:
    return {k: v for k, v in _resource().items() if not k.startswith("_")}


def _product_key(name: str) -> str:
    return " ".join(re.split(r"[\s-]+", name.lower()))


@lru_cache(maxsize=1)
def products() -> dict[str, dict[str, float]]:
    """Products whose name fixes the strength of one unit ("tylenol extra strength": 500 mg
    of paracetamol), keyed by name with hyphens as spaces."""
    return {_product_key(k): v for k, v in _resource()["_products"].items() if not k.startswith("_")}


@lru_cache(maxsize=1)
def _product_re() -> re.Pattern:
    names = sorted(products(), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(r"[\s-]+".join(map(re.escape, n.split())) for n in names) + r")\b")


@lru_cache(maxsize=1)
def _unit_count_re() -> re.Pattern:
    """A count of product units: "2 Tylenol Extra Strength", "2 more at noon", "2 at 4pm"."""
    follow = (_product_re().pattern + "|(?:" + _TABLETS + r"|gel ?caps?|liqui-?gels?|softgels?|of them"
              r"|at|before|after|around|with|by|during|later|again|in the)\b")
    return re.compile(r"(?<![\w.:/,-])(?P<n>\d+|" + _NUM_WORD + r")\s+(?:(?:more|extra|other|further)\s+)?"
                      r"(?=" + follow + ")")


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
    role: str = "dose"  # "dose"; "cap": a stated daily maximum; "sum": single doses added up
    daily_cap_mg: float | None = None  # the text's own daily maximum for this drug, when stated
    start: int = 0  # span in the lower-cased text
    end: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def single_mg(self) -> float:
        return self.amount * UNIT_MG[self.unit] * self.count

    @property
    def daily_mg(self) -> float | None:
        if self.schedule == "total":
            return self.single_mg
        if self.per_day is None:
            return None
        worst = self.single_mg * self.per_day
        return worst if self.daily_cap_mg is None else min(worst, self.daily_cap_mg)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(single_mg=round(self.single_mg, 4), daily_mg=self.daily_mg)
        return out


def _bounded(value: float, top: float) -> float:
    return value if math.isfinite(value) and value <= top else top


def _number(s: str, top: float = MAX_AMOUNT) -> float:
    value = NUMBER_WORDS.get(s)
    return value if value is not None else _bounded(float(s.replace(",", "")), top)


def parse_frequency(text: str) -> tuple[float | None, str | None]:
    """Doses per day and schedule kind from the words after a dose. A zero count or
    interval ("every 0 hours") is not a schedule and is skipped."""
    for rx, n, kind in FREQ_RES:
        m = rx.search(text)
        if not m:
            continue
        if n is not None:
            return n, kind
        value = _number(next(g for g in m.groups() if g))
        if value <= 0:
            continue
        per_day = 24 / value if kind == "hours" else (value / 7 if kind == "weekly" else value)
        return _bounded(per_day, MAX_PER_DAY), kind
    return None, None


def parse_age(text: str) -> float | None:
    """Age in years from the text; None when absent or implausible (over 130)."""
    low = text.lower()
    for rx, scale in AGE_RES:
        m = rx.search(low)
        if m:
            age = _number(m.group(1)) * scale
            return age if age <= MAX_AGE else None
    return next((age for rx, age in AGE_WORDS if rx.search(low)), None)


def parse_weight(text: str) -> float | None:
    """Weight in kg from the text; None when absent, zero or implausible."""
    m = WEIGHT_RE.search(text.lower())
    if not m:
        return None
    value = _number(m.group(1))
    kg = value * 0.4536 if m.group(2).startswith(("lb", "pound")) else value
    return kg if 0 < kg <= MAX_WEIGHT else None


def estimated_weight(age: float) -> float:
    """APLS weight-for-age: infants months/2 + 4; 1-5 y 2*age + 8; 6-12 y 3*age + 7."""
    if age < 1:
        return age * 12 / 2 + 4
    return 2 * age + 8 if age <= 5 else 3 * age + 7


def patient_age_weight(low: str, ctx: PatientContext | None) -> tuple[float | None, float | None]:
    """The context wins over the text. A weight in the text counts only beside an age
    ("lost 10 kg" must not make an adult a child)."""
    age = ctx.age if ctx and ctx.age is not None else parse_age(low)
    if ctx and ctx.weight_kg is not None:
        return age, ctx.weight_kg
    return age, parse_weight(low) if age is not None else None


# ---- extraction -------------------------------------------------------------

@dataclass
class _Scan:
    """What dose extraction reads while it walks the sentences of one text."""

    low: str
    src: str  # the original text, for quoting, when lower-casing kept its length
    mentions: list[DrugMention]  # in reading order, so spans can be bisected
    age: float | None
    weight: float | None
    last: Dose | None = None  # the previous dose, whose drug a bare "another 1 g" refers to

    def __post_init__(self) -> None:
        self.starts = [m.start for m in self.mentions]
        self.ends = [m.end for m in self.mentions]

    def dose(self, drug: str, amount: float, unit: str, start: int, end: int, tail: str,
             role: str = "dose", count: float = 1, per_kg: bool = False) -> Dose:
        """A Dose with the patient's age and weight; a cap is a daily total ("total")."""
        per_day, kind = (None, "total") if role == "cap" else parse_frequency(tail)
        dose = Dose(drug=drug, amount=amount, unit=unit, text=self.src[start:end].strip()[:MAX_QUOTE], count=count,
                    per_day=per_day, schedule=kind, per_kg=per_kg, age_years=self.age, weight_kg=self.weight,
                    role=role, start=start, end=end)
        if role == "dose":
            self.last = dose
        return dose


def extract_doses(text: str, lexicon: DrugLexicon, patient_context: PatientContext | dict | None = None) -> list[Dose]:
    """Every dose statement (and stated daily maximum) whose drug we can name, with
    its schedule and the patient's age/weight (from `patient_context`, else the text)."""
    low = text.lower()
    age, weight = patient_age_weight(low, as_context(patient_context))
    scan = _Scan(low, text if len(text) == len(low) else low, lexicon.find(text), age, weight)
    doses = [d for s0, s1 in sentences(low) for d in _sentence_doses(scan, s0, s1)]
    return _apply_caps(doses)


def _sentence_doses(scan: _Scan, s0: int, s1: int) -> list[Dose]:
    caps = _cap_spans(scan.low, s0, s1)
    matches = list(DOSE_RE.finditer(scan.low, s0, s1))
    capped = [any(c0 <= m.start() < c1 for c0, c1 in caps) for m in matches]
    in_cap = [m for m, c in zip(matches, capped) if c]
    groups = _ranges([m for m, c in zip(matches, capped) if not c], scan.low)
    doses = []
    for i, group in enumerate(groups):
        end = groups[i + 1][0].start() if i + 1 < len(groups) else s1
        end = min([end] + [c0 for c0, _ in caps if c0 >= group[-1].end()])
        doses += _mass_dose(scan, group, end, s0, s1)
    doses += [d for m in in_cap for d in _mass_dose(scan, [m], m.end(), s0, s1, role="cap")]
    doses += _tablet_caps(scan, caps, in_cap)
    if not groups:
        doses += _product_doses(scan, s0, s1)
    return doses


def _ranges(matches: list[re.Match], low: str) -> list[list[re.Match]]:
    """Group "500 mg to 1 g" / "500mg-1g" into one range (checked at its top)."""
    groups: list[list[re.Match]] = []
    for m in matches:
        if groups and RANGE_GAP_RE.fullmatch(low, groups[-1][-1].end(), m.start()):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _mass_dose(scan: _Scan, group: list[re.Match], tail_end: int, s0: int, s1: int, role: str = "dose") -> list[Dose]:
    top = max(group, key=lambda m: _number(m.group("amount")) * UNIT_MG[_unit(m.group("unit"))])
    drug = _drug_for(scan, group[0].start(), group[-1].end(), s0, s1, role)
    if drug is None:
        return []
    count = top.group("count") or top.group("wcount")
    return [scan.dose(drug, _number(top.group("amount")), _unit(top.group("unit")), group[0].start(),
                      group[-1].end(), scan.low[group[-1].end():tail_end], per_kg=bool(top.group("perkg")),
                      count=_number(count, MAX_COUNT) if count else 1, role=role)]


def _unit(raw: str) -> str:
    return {"milligram": "mg", "milligrams": "mg", "gram": "g", "grams": "g", "gm": "g", "ug": "mcg",
            "µg": "mcg", "μg": "mcg", "microgram": "mcg", "micrograms": "mcg"}.get(raw, raw)


def _drug_for(scan: _Scan, start: int, end: int, s0: int, s1: int, role: str = "dose") -> str | None:
    """The drug a dose belongs to: the nearest one named in its sentence, else the
    previous dose's when the dose continues it: in the same sentence ("800 mg at
    lunch, 800 mg at dinner"), or in a sentence naming no drug that says so
    ("Take another 1 g at lunch") or states its maximum ("Maximum 4 g a day").
    None when that drug has no limits."""
    name = _nearest_drug(scan, start, end, s0, s1)
    if name is None and scan.last is not None:
        k = bisect_left(scan.starts, s0)
        unnamed = k == len(scan.starts) or scan.starts[k] >= s1
        follows = CONTINUE_RE.search(scan.low, max(s0, start - 25), start) if role == "dose" \
            else BARE_CAP_RE.match(scan.low, end)
        if scan.last.start >= s0 or (unnamed and follows):
            name = scan.last.drug
    return name if name in limits() else None


def _nearest_drug(scan: _Scan, start: int, end: int, s0: int, s1: int) -> str | None:
    """The closest drug in the same sentence: "1 g of paracetamol" first, then before
    the dose within 60 characters, else after it within 40 ("500 mg paracetamol")."""
    j = bisect_left(scan.starts, end)
    after = scan.mentions[j] if j < len(scan.mentions) and scan.starts[j] < s1 and scan.starts[j] - end <= 40 else None
    if after and OF_RE.fullmatch(scan.low, end, after.start):
        return after.name
    i = bisect_right(scan.ends, start)
    before = scan.mentions[i - 1] if i and scan.ends[i - 1] >= s0 and start - scan.ends[i - 1] <= 60 else None
    return (before or after).name if before or after else None


def _cap_spans(low: str, s0: int, s1: int) -> list[tuple[int, int]]:
    spans = []
    for rx in CAP_RES:
        for m in rx.finditer(low, s0, s1):
            if not CAP_SCHEDULE_RE.search(m.group("body")):
                spans.append((m.start(), m.end()))
    return spans


def _tablet_caps(scan: _Scan, caps: list[tuple[int, int]], in_cap: list[re.Match]) -> list[Dose]:
    """ "No more than 8 tablets in 24 hours": 8 units of the tablet strength the text just gave."""
    unit = scan.last  # caps never become `last`, so this is a real dose
    if unit is None or not (unit.count != 1 or TABLET_AFTER_RE.match(scan.low, unit.end)):
        return []  # "1 g every 4 hours" does not say what one tablet holds
    out = []
    for c0, c1 in caps:
        m = TABLET_COUNT_RE.search(scan.low, c0, c1)
        if m is None or any(c0 <= d.start() < c1 for d in in_cap):
            continue
        out.append(scan.dose(unit.drug, unit.amount, unit.unit, c0, c1, "", role="cap",
                             count=_number(m.group("n"), MAX_COUNT)))
    return out


def _product_doses(scan: _Scan, s0: int, s1: int) -> list[Dose]:
    """Counted units of a product of known strength in a sentence with no mass dose:
    "I took 2 Tylenol Extra Strength at 8am, 2 more at noon"."""
    named = list(_product_re().finditer(scan.low, s0, s1))
    if not named:
        return []
    starts = [p.start() for p in named]
    counts = [m for m in _unit_count_re().finditer(scan.low, s0, s1)
              if not PACK_RE.search(scan.low, max(s0, m.start() - 25), m.start())]
    doses = []
    for i, m in enumerate(counts):
        k = bisect_right(starts, m.end())  # the product named last before the count, or right after it
        if k == 0:
            continue
        product = named[k - 1]
        tail = scan.low[m.end():counts[i + 1].start() if i + 1 < len(counts) else s1]
        for drug, mg in products()[_product_key(product.group())].items():
            if drug in limits():
                doses.append(scan.dose(drug, float(mg), "mg", m.start(), m.end(), tail,
                                       count=_number(m.group("n"), MAX_COUNT)))
                doses[-1].text = f"{m.group('n')} x {product.group()} ({mg:g} mg {drug})"
    return doses


def _apply_caps(doses: list[Dose]) -> list[Dose]:
    """A stated daily maximum governs the daily check of that drug's regimens."""
    caps: dict[str, float] = {}
    for d in doses:
        if d.role == "cap":
            caps[d.drug] = min(caps.get(d.drug, math.inf), d.single_mg)
    for d in doses:
        if d.role == "dose" and d.drug in caps and d.schedule in ("times", "hours"):
            d.daily_cap_mg = caps[d.drug]
    return doses


# ---- checks -----------------------------------------------------------------

def check_dose(dose: Dose) -> list[str]:
    """Reasons this dose is unsafe (empty when it is within limits)."""
    lim = limits()[dose.drug]
    if dose.per_kg:
        return []  # a per-kg statement is a rule, not a dose someone takes
    if dose.role == "sum":
        return _sum_limits(dose, lim)
    checks = (_unit_confusion, _weekly_drug, _adult_limits, _child_limits)
    return [w for check in checks for w in check(dose, lim)]


def _fmt(mg: float) -> str:
    if mg >= 1e5:  # plain digits, not "1e+06 mg"
        return f"{mg:,.0f} mg"
    return f"{mg * 1000:g} mcg" if mg < 1 else f"{mg:g} mg"


def _unit_confusion(dose: Dose, lim: dict) -> list[str]:
    if lim.get("usual_unit") != "mcg" or dose.unit not in ("mg", "g"):
        return []
    if dose.single_mg > lim["max_single_mg"] * 3 and dose.amount <= lim["max_single_mg"] * 1000:
        return [f"{dose.drug} is dosed in micrograms: {dose.text} = {dose.single_mg * 1000:g} mcg, "
                f"over {dose.single_mg / lim['max_single_mg']:.0f}x the "
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
    if dose.daily_cap_mg is None and daily is not None and daily > lim["max_daily_mg"] + 1e-9:
        what = f"{dose.drug}: the stated maximum of" if dose.role == "cap" else dose.drug
        out.append(f"{what} {_fmt(daily)} a day exceeds the adult maximum of {_fmt(lim['max_daily_mg'])} a day{note}")
    return out


def _is_child(dose: Dose) -> bool:
    if dose.age_years is not None:
        return dose.age_years < CHILD_AGE
    return dose.weight_kg is not None and dose.weight_kg < CHILD_WEIGHT


def _child_limits(dose: Dose, lim: dict) -> list[str]:
    if not _is_child(dose):
        return []
    child = lim.get("child", {})
    if dose.age_years is not None and dose.age_years < child.get("min_age_years", 0):
        why = child.get("why", f"{dose.drug} is not for children under {child['min_age_years']:g}")
        return [f"{why}; the child is {_age_words(dose.age_years)}"]
    return _per_kg_dose(dose, child) or _per_kg_day(dose, child) or _adult_range(dose, lim, child)


def _patient(dose: Dose) -> tuple[float, str]:
    """(weight in kg, words for the patient): "16 kg (estimated from age) child of 4 years"."""
    if dose.age_years is None:
        return dose.weight_kg, f"{dose.weight_kg:.0f} kg patient"
    weight = dose.weight_kg or estimated_weight(dose.age_years)
    how = "" if dose.weight_kg else " (estimated from age)"
    return weight, f"{weight:.0f} kg{how} child of {_age_words(dose.age_years)}"


def _per_kg_dose(dose: Dose, child: dict) -> list[str]:
    if "mg_per_kg_dose" not in child or dose.schedule == "total":
        return []
    weight, who = _patient(dose)
    limit = child["mg_per_kg_dose"] * weight
    if dose.single_mg <= limit * TOLERANCE:
        return []
    return [f"{_fmt(dose.single_mg)} of {dose.drug} is {dose.single_mg / weight:.0f} mg/kg for a {who}: the limit is "
            f"{child['mg_per_kg_dose']:g} mg/kg per dose (about {_fmt(limit)}); this looks like an adult dose"]


def _per_kg_day(dose: Dose, child: dict) -> list[str]:
    if "mg_per_kg_day" not in child or dose.daily_mg is None:
        return []
    weight, who = _patient(dose)
    limit = child["mg_per_kg_day"] * weight
    if dose.daily_mg <= limit * TOLERANCE:
        return []
    return [f"{_fmt(dose.daily_mg)} a day of {dose.drug} exceeds {child['mg_per_kg_day']:g} mg/kg a day "
            f"(about {_fmt(limit)}) for a {who}"]


def _adult_range(dose: Dose, lim: dict, child: dict) -> list[str]:
    if child or dose.single_mg < lim["max_single_mg"] / 2:
        return []
    who = _age_words(dose.age_years) if dose.age_years is not None else f"{dose.weight_kg:.0f} kg"
    return [f"{_fmt(dose.single_mg)} of {dose.drug} is an adult-range dose for a child of {who}; "
            "children need weight-based dosing"]


def _age_words(age: float) -> str:
    return f"{age * 12:.0f} months" if age < 2 else f"{age:g} years"


def _sum_limits(dose: Dose, lim: dict) -> list[str]:
    out = []
    if dose.single_mg > lim["max_daily_mg"] + 1e-9:
        out.append(f"{dose.drug} doses in this text add up to {_fmt(dose.single_mg)} ({dose.text}), over the "
                   f"adult maximum of {_fmt(lim['max_daily_mg'])} a day")
    child = lim.get("child", {})
    if _is_child(dose) and (dose.age_years is None or dose.age_years >= child.get("min_age_years", 0)):
        out += _per_kg_day(dose, child)
    return out


# ---- single administrations that add up ---------------------------------------

def summed_doses(low: str, doses: list[Dose]) -> list[Dose]:
    """One "sum" dose per drug and day for single administrations of the same drug
    that are not alternatives to each other: "1 g in the morning. Take another 1 g at
    lunch, 1 g ..." is one day's total."""
    spans = sentences(low)
    described = [(a, b) for a, b in spans if DESCRIPTION_RE.search(low, a, b)]  # "comes in 200 mg, 400 mg ..."
    out = []
    for drug in dict.fromkeys(d.drug for d in doses):
        singles = [d for d in doses if d.drug == drug and _single_administration(low, d)
                   and not any(a <= d.start < b for a, b in described)]
        for day in _days(low, singles):
            picks = _without_alternatives(low, day)
            if len(picks) >= 2:
                out.append(_sum_dose(picks))
    return out


def _single_administration(low: str, d: Dose) -> bool:
    """A dose taken once: no schedule of its own (or once a day, "at bedtime"), not a
    threshold ("more than 1 g"), a strength ("500 mg tablets") or a per-kg rule."""
    lim = limits()[d.drug]
    if d.role != "dose" or d.per_kg or "max_daily_mg" not in lim or lim.get("schedule") == "weekly":
        return False
    if d.schedule is not None and (d.schedule, d.per_day) != ("times", 1):
        return False
    if THRESHOLD_RE.search(low, max(0, d.start - 40), d.start):
        return False
    return not (d.count == 1 and STRENGTH_RE.match(low, d.end))


def _days(low: str, doses: list[Dose]) -> list[list[Dose]]:
    """Split where the text moves to another day ("Yesterday ... Today ...")."""
    days: list[list[Dose]] = []
    for prev, d in zip([None, *doses], doses):
        if prev is None or DAY_RE.search(low, prev.end, d.start):
            days.append([])
        days[-1].append(d)
    return days


def _without_alternatives(low: str, doses: list[Dose]) -> list[Dose]:
    """The largest of each run of alternatives ("500 mg or 1 g"; "250 mg, 500 mg or 1 g")."""
    gaps = [(a.end, b.start) for a, b in zip(doses, doses[1:])]
    alt = [bool(ALT_RE.search(low, g0, g1)) for g0, g1 in gaps]
    bare = [bool(BARE_GAP_RE.fullmatch(low, g0, g1)) for g0, g1 in gaps]
    i = 0
    while i < len(gaps):  # a bare comma list that ends in "or" is one list of alternatives
        j = i
        while j < len(gaps) and bare[j]:
            j += 1
        if any(alt[i:j]):
            alt[i:j] = [True] * (j - i)
        i = j + 1
    groups = [[doses[0]]] if doses else []
    for d, is_alt in zip(doses[1:], alt):
        groups[-1].append(d) if is_alt else groups.append([d])
    return [max(g, key=lambda d: d.single_mg) for g in groups]


def _sum_dose(picks: list[Dose]) -> Dose:
    first = picks[0]
    words = " + ".join(_fmt(d.single_mg) for d in picks[:12]) + (" + ..." if len(picks) > 12 else "")
    return Dose(drug=first.drug, amount=sum(d.single_mg for d in picks), unit="mg", text=words,
                schedule="total", role="sum", age_years=first.age_years, weight_kg=first.weight_kg,
                start=first.start, end=picks[-1].end)


def check_dosage(text: str, lexicon: DrugLexicon, patient_context: PatientContext | dict | None = None) -> list[dict]:
    """Dose statements in `text` that break a limit, each with its warnings; doses that
    only break the daily limit together come as one entry with role "sum"."""
    doses = extract_doses(text, lexicon, patient_context)
    flagged = []
    for dose in doses + summed_doses(text.lower(), doses):
        dose.warnings = check_dose(dose)
        if dose.warnings:
            flagged.append(dose.as_dict())
    return flagged
