"""PatientContext (one schema for HTTP, Python and CLI) and contraindication checks."""

import json
import pickle
from importlib import resources

import pydantic
import pytest

from medqa.safety.context import PatientContext, as_context, check_context, contraindications
from medqa.safety.interactions import default_checker
from medqa.safety.lexicon import DrugLexicon, class_members


@pytest.fixture(scope="module")
def lexicon():
    return default_checker().lexicon


# ---- the schema -------------------------------------------------------------

def test_defaults_and_good_values():
    assert PatientContext() == PatientContext(allergies=[], conditions=[], medications=[])
    ctx = PatientContext(age=0, weight_kg=3.2, pregnant=False, breastfeeding=True, allergies=["penicillin"],
                         conditions=["asthma"], medications=("warfarin",))
    assert ctx.medications == ["warfarin"] and ctx.age == 0


@pytest.mark.parametrize("kwargs, field", [
    ({"age": -1}, "age"), ({"age": 131}, "age"), ({"age": float("nan")}, "age"), ({"age": float("inf")}, "age"),
    ({"age": True}, "age"), ({"age": "12"}, "age"),
    ({"weight_kg": 0}, "weight_kg"), ({"weight_kg": -5}, "weight_kg"), ({"weight_kg": 501}, "weight_kg"),
    ({"weight_kg": float("nan")}, "weight_kg"),
    ({"pregnant": 1}, "pregnant"), ({"pregnant": "yes"}, "pregnant"), ({"breastfeeding": 0}, "breastfeeding"),
    ({"allergies": "penicillin"}, "allergies"), ({"allergies": [1]}, "allergies"), ({"allergies": None}, "allergies"),
    ({"conditions": ["x"] * 51}, "conditions"), ({"medications": ["x" * 201]}, "medications"),
])
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PatientContext(**kwargs)


def test_from_dict():
    assert PatientContext.from_dict({"age": 4, "allergies": None}).allergies == []  # null is "not given"
    with pytest.raises(ValueError, match=r"unknown patient_context key\(s\): agee, weight; allowed: age, weight_kg"):
        PatientContext.from_dict({"agee": 4, "weight": 20})
    with pytest.raises(ValueError, match="age_years"):  # the schema's key is `age`, everywhere
        PatientContext.from_dict({"age_years": 4})


def test_as_context():
    ctx = PatientContext(age=3)
    assert as_context(None) is None and as_context(ctx) is ctx
    assert as_context({"age": 3}) == ctx
    with pytest.raises(TypeError):
        as_context("age=3")
    with pytest.raises(TypeError):
        as_context(["age", 3])


def test_pickles_and_converts():
    ctx = PatientContext(age=3, medications=["warfarin"])
    assert pickle.loads(pickle.dumps(ctx)) == ctx  # crosses Ray actor boundaries
    assert ctx.as_dict()["age"] == 3


# ---- pydantic: the serving layer uses the dataclass as a field type ----------

@pytest.fixture(scope="module")
def adapter():
    return pydantic.TypeAdapter(PatientContext)


def test_pydantic_unknown_key_names_it(adapter):
    with pytest.raises(pydantic.ValidationError) as err:
        adapter.validate_python({"age": 4, "temprature": 1})
    [e] = err.value.errors()
    assert e["type"] == "unexpected_keyword_argument" and e["loc"] == ("temprature",)


@pytest.mark.parametrize("bad, needle", [
    ({"age": 200}, "age must be between 0 and 130"),  # raised in __post_init__
    ({"pregnant": "yes"}, "pregnant must be true"),  # lax pydantic would read "yes" as True
    ({"pregnant": 1}, "pregnant must be true"),
    ({"age": "12"}, "age must be a number"),
    ({"allergies": "penicillin"}, "allergies must be a list"),
])
def test_pydantic_bad_values_fail(adapter, bad, needle):
    with pytest.raises(pydantic.ValidationError, match=needle):
        adapter.validate_python(bad)


def test_pydantic_good_dict_passes(adapter):
    good = {"age": 4, "weight_kg": 16.5, "pregnant": False, "allergies": ["penicillin"], "conditions": ["asthma"]}
    ctx = adapter.validate_python(good)
    assert isinstance(ctx, PatientContext) and ctx.weight_kg == 16.5 and ctx.conditions == ["asthma"]
    assert adapter.validate_json(json.dumps(good)) == ctx
    schema = adapter.json_schema()
    assert schema["additionalProperties"] is False and "Age in years" in schema["properties"]["age"]["description"]


def test_pydantic_nested_in_a_request_model():
    class Request(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        patient_context: PatientContext | None = None

    assert Request.model_validate({"patient_context": {"age": 4}}).patient_context.age == 4
    with pytest.raises(pydantic.ValidationError) as err:
        Request.model_validate({"patient_context": {"age": 4, "bogus": 1}})
    assert err.value.errors()[0]["loc"] == ("patient_context", "bogus")


# ---- contraindications ------------------------------------------------------

CASES = [  # text, context, expected (kind, drug, trigger, severity)
    ("Take warfarin and aspirin together", {"conditions": ["atrial_fibrillation"]},
     ("condition", "aspirin", "atrial_fibrillation", "major")),
    ("Can I take ibuprofen?", {"conditions": ["afib"]}, ("condition", "ibuprofen", "afib", "major")),
    ("Amoxicillin 500 mg three times a day", {"allergies": ["penicillin"]},
     ("allergy", "amoxicillin", "penicillin", "major")),
    ("Is Augmentin OK?", {"allergies": ["Penicillins"]}, ("allergy", "amoxicillin", "Penicillins", "major")),
    ("Try flucloxacillin", {"allergies": ["amoxicillin"]}, ("allergy", "flucloxacillin", "amoxicillin", "major")),
    ("Keflex for the infection", {"allergies": ["penicillin"]}, ("allergy", "cefalexin", "penicillin", "moderate")),
    ("meropenem IV", {"allergies": ["penicillin"]}, ("allergy", "meropenem", "penicillin", "moderate")),
    ("Bactrim for a UTI", {"allergies": ["sulfa"]}, ("allergy", "co-trimoxazole", "sulfa", "major")),
    ("sulfasalazine for colitis", {"allergies": ["sulpha drugs"]},
     ("allergy", "sulfasalazine", "sulpha drugs", "major")),
    ("naproxen for the pain", {"allergies": ["aspirin"]}, ("allergy", "naproxen", "aspirin", "major")),
    ("aspirin 75 mg", {"allergies": ["ibuprofen"]}, ("allergy", "aspirin", "ibuprofen", "major")),
    ("Are NSAIDs safe for me?", {"allergies": ["NSAIDs"]}, ("allergy", "NSAIDs", "NSAIDs", "major")),
    ("diclofenac gel", {"allergies": ["aspirin-exacerbated asthma"]},
     ("allergy", "diclofenac", "aspirin-exacerbated asthma", "major")),
    ("oxycodone after surgery", {"allergies": ["codeine"]}, ("allergy", "oxycodone", "codeine", "moderate")),
    # direct, via brand
    ("lisinopril 10 mg", {"allergies": ["Zestril"]}, ("allergy", "lisinopril", "Zestril", "major")),
    ("isotretinoin for acne", {"pregnant": True}, ("pregnancy", "isotretinoin", "pregnant", "major")),
    ("Roaccutane", {"conditions": ["Pregnant, 12 weeks"]},
     ("pregnancy", "isotretinoin", "Pregnant, 12 weeks", "major")),
    ("ramipril", {"pregnant": True}, ("pregnancy", "ramipril", "pregnant", "major")),
    ("ibuprofen", {"pregnant": True}, ("pregnancy", "ibuprofen", "pregnant", "moderate")),
    ("lithium", {"pregnant": True}, ("pregnancy", "lithium", "pregnant", "moderate")),
    ("doxycycline", {"pregnant": True}, ("pregnancy", "doxycycline", "pregnant", "major")),
    ("codeine for the pain", {"breastfeeding": True}, ("breastfeeding", "codeine", "breastfeeding", "major")),
    ("tramadol", {"conditions": ["breastfeeding"]}, ("breastfeeding", "tramadol", "breastfeeding", "major")),
    ("Advil for my back", {"conditions": ["CKD"]}, ("condition", "ibuprofen", "CKD", "major")),
    ("naproxen", {"conditions": ["chronic_kidney_disease"]},
     ("condition", "naproxen", "chronic_kidney_disease", "major")),
    ("metformin 500 mg", {"conditions": ["kidney disease"]}, ("condition", "metformin", "kidney disease", "moderate")),
    ("metformin 500 mg", {"conditions": ["on dialysis"]}, ("condition", "metformin", "on dialysis", "major")),
    ("ibuprofen", {"conditions": ["stomach ulcer"]}, ("condition", "ibuprofen", "stomach ulcer", "major")),
    ("aspirin", {"conditions": ["history of GI bleed"]}, ("condition", "aspirin", "history of GI bleed", "major")),
    ("ibuprofen", {"conditions": ["heart failure"]}, ("condition", "ibuprofen", "heart failure", "major")),
    ("ibuprofen", {"conditions": ["anticoagulated"]}, ("condition", "ibuprofen", "anticoagulated", "major")),
    ("propranolol for anxiety", {"conditions": ["asthma"]}, ("condition", "propranolol", "asthma", "major")),
    ("nadolol", {"conditions": ["Asthma"]}, ("condition", "nadolol", "Asthma", "major")),
    ("bisoprolol", {"conditions": ["asthma"]}, ("condition", "bisoprolol", "asthma", "moderate")),
    ("metformin", {"conditions": ["CKD stage 4"]}, ("condition", "metformin", "CKD stage 4", "major")),
    ("Sudafed for my cold", {"conditions": ["uncontrolled hypertension"]},
     ("condition", "pseudoephedrine", "uncontrolled hypertension", "major")),
    ("sumatriptan", {"conditions": ["coronary artery disease"]},
     ("condition", "sumatriptan", "coronary artery disease", "major")),
    ("citalopram", {"conditions": ["long-QT syndrome"]}, ("condition", "citalopram", "long-QT syndrome", "major")),
    ("the combined pill", {"conditions": ["migraine with aura"]},
     ("condition", "ethinylestradiol", "migraine with aura", "major")),
]


@pytest.mark.parametrize("text, ctx, expected", CASES)
def test_contraindications(lexicon, text, ctx, expected):
    found = check_context(text, lexicon, PatientContext.from_dict(ctx))
    assert expected in [(f["kind"], f["drug"], f["trigger"], f["severity"]) for f in found], found
    assert all(set(f) == {"kind", "drug", "trigger", "severity", "reason"} and f["reason"].endswith(".") for f in found)


@pytest.mark.parametrize("text, ctx", [
    ("Take warfarin and aspirin together", None),
    ("Take warfarin and aspirin together", {}),
    ("What is asthma?", {"conditions": ["asthma"]}),  # no drug named
    ("paracetamol 1 g", {"allergies": ["penicillin"], "conditions": ["asthma", "CKD"], "pregnant": True}),
    ("isotretinoin", {"conditions": ["not pregnant"]}),
    ("isotretinoin", {"pregnant": False, "conditions": ["pregnancy"]}),  # the explicit flag wins
    ("ibuprofen", {"conditions": ["mouth ulcer", "leg ulcer"]}),  # not a peptic ulcer
    ("amoxicillin", {"allergies": ["sulfa", "codeine"]}),
    ("codeine", {"breastfeeding": False}),
])
def test_no_contraindication(lexicon, text, ctx):
    assert check_context(text, lexicon, ctx) == []


def test_findings_dedupe_and_order(lexicon):
    found = check_context("propranolol and ibuprofen", lexicon, {"conditions": ["asthma"], "allergies": ["ibuprofen"]})
    keys = [(f["kind"], f["drug"], f["trigger"]) for f in found]
    assert len(keys) == len(set(keys))  # propranolol: major (non-selective) kept, moderate (beta blocker) dropped
    assert [f["severity"] for f in found] == sorted((f["severity"] for f in found), key=lambda s: s != "major")


def test_base_lexicon_knows_every_drug_in_the_data():
    lexicon, data = DrugLexicon(), contraindications()
    rules = [r for t in data.allergies + data.conditions for r in t.rules] + list(data.pregnancy + data.breastfeeding)
    unknown = sorted(d for r in rules for d in r.drugs if d not in [m.name for m in lexicon.find(d)])
    assert unknown == []


def test_data_references_only_known_classes():
    raw = json.loads(resources.files("medqa.resources").joinpath("safety/contraindications.json").read_text())
    rules = [r for v in [*raw["allergies"].values(), *raw["conditions"].values()] for r in v["rules"]]
    rules += raw["pregnancy"] + raw["breastfeeding"]
    refs = {d for r in rules for d in r["drugs"] if d.startswith("class:")}
    assert refs <= set(class_members())
    assert {r["severity"] for r in rules} <= {"major", "moderate"}
