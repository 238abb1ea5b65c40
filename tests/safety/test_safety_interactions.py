"""Drug interactions: curated table, name normalisation, DDInter loading at scale."""

import csv
import time

import pytest

from medqa.safety.interactions import (
    InteractionChecker,
    InteractionTable,
    default_checker,
    default_table,
    load_curated,
    load_ddinter,
)


@pytest.fixture(scope="module")
def checker():
    return default_checker()


@pytest.mark.parametrize("drugs, pair, severity", [
    (["warfarin", "ibuprofen"], ("ibuprofen", "warfarin"), "major"),
    (["Coumadin", "Advil"], ("ibuprofen", "warfarin"), "major"),            # brands
    (["WARFARIN", "Flagyl"], ("metronidazole", "warfarin"), "major"),       # case
    (["Eliquis", "naproxen"], ("apixaban", "naproxen"), "major"),
    (["warfarin", "fluconazole"], ("fluconazole", "warfarin"), "major"),
    (["warfarin", "amiodarone"], ("amiodarone", "warfarin"), "major"),
    (["warfarin", "Bactrim"], ("co-trimoxazole", "warfarin"), "major"),
    (["Viagra", "Imdur"], ("isosorbide mononitrate", "sildenafil"), "major"),
    (["tadalafil", "nitroglycerin"], ("glyceryl trinitrate", "tadalafil"), "major"),
    (["simvastatin", "clarithromycin"], ("clarithromycin", "simvastatin"), "major"),
    (["simvastatin", "gemfibrozil"], ("gemfibrozil", "simvastatin"), "major"),
    (["Nardil", "Prozac"], ("fluoxetine", "phenelzine"), "major"),
    (["sertraline", "tramadol"], ("sertraline", "tramadol"), "major"),
    (["citalopram", "ondansetron"], ("citalopram", "ondansetron"), "major"),  # QT
    (["lisinopril", "spironolactone"], ("lisinopril", "spironolactone"), "major"),
    (["losartan", "potassium chloride"], ("losartan", "potassium chloride"), "major"),
    (["lithium", "ibuprofen"], ("ibuprofen", "lithium"), "major"),
    (["lithium", "ramipril"], ("lithium", "ramipril"), "major"),
    (["methotrexate", "trimethoprim"], ("methotrexate", "trimethoprim"), "major"),
    (["methotrexate", "naproxen"], ("methotrexate", "naproxen"), "moderate"),
    (["OxyContin", "Xanax"], ("alprazolam", "oxycodone"), "major"),
    (["sertraline", "sumatriptan"], ("sertraline", "sumatriptan"), "moderate"),
    (["levothyroxine", "omeprazole"], ("levothyroxine", "omeprazole"), "minor"),
    (["ibuprofin", "warfarine"], ("ibuprofen", "warfarin"), "major"),       # misspellings
    (["statins", "clarithromycin"], ("clarithromycin", "statins"), "major"),  # class word
])
def test_known_pairs(checker, drugs, pair, severity):
    hits = checker.between(drugs)
    assert hits, f"no interaction found for {drugs}"
    top = hits[0]
    assert (top["drug_a"], top["drug_b"]) == pair
    assert top["severity"] == severity
    assert top["description"] and top["source"]


@pytest.mark.parametrize("drugs", [
    ["paracetamol", "amoxicillin"],
    ["metformin", "atorvastatin"],
    ["loratadine", "omeprazole"],
    ["ambient", "lyrics"],          # English words one typo away from brands
])
def test_no_interaction(checker, drugs):
    assert checker.between(drugs) == []


@pytest.mark.parametrize("text, pairs", [
    ("Is Aleve stronger than Advil?", []),
    ("Is Xarelto safer than warfarin?", []),
    ("What is the difference between an SSRI and an SNRI?", []),
    ("Can I take Advil with Aleve?", [("ibuprofen", "naproxen")]),
    ("Can I take ibuprofen or naproxen with warfarin?", [("ibuprofen", "warfarin"), ("naproxen", "warfarin")]),
])
def test_alternatives_are_not_combinations(checker, text, pairs):
    assert [(h["drug_a"], h["drug_b"]) for h in checker.check(text)] == pairs


def test_curated_table_is_large_and_sourced():
    pairs = default_table().drug_pairs()
    assert len(pairs) >= 500
    assert {p.severity for p in pairs} == {"minor", "moderate", "major"}
    assert all(p.source and p.description for p in pairs)


def test_text_and_patient_context(checker):
    hits = checker.check("The dentist gave me Voltaren for my tooth.", {"medications": ["Coumadin 5 mg daily"]})
    assert [(h["drug_a"], h["drug_b"]) for h in hits] == [("diclofenac", "warfarin")]


def test_more_severe_rule_wins():
    table = InteractionTable()
    table.add("a", "b", "minor", "first", "x")
    table.add("b", "a", "major", "second", "y")
    table.add("a", "b", "moderate", "third", "z")
    assert table.lookup("a", "b").description == "second"
    with pytest.raises(ValueError):
        table.add("a", "c", "fatal", "?", "?")


def test_curated_loader_expands_classes(tmp_path):
    rules = tmp_path / "rules.csv"
    rules.write_text("a,b,severity,description,source\nclass:ppi,clopidogrel,moderate,test,BNF\n")
    table = load_curated(rules)
    assert table.lookup("pantoprazole", "clopidogrel").severity == "moderate"
    assert table.lookup("clopidogrel", "class:ppi") is not None


def _write_ddinter(path, n_pairs):
    names = [f"drugx{i:05d}" for i in range(1000)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["DDInterID_A", "Drug_A", "DDInterID_B", "Drug_B", "Level"])
        w.writerow(["DDInter1", "Acetylsalicylic acid", "DDInter2", "Zolmitriptan", "Moderate"])
        w.writerow(["DDInter3", "Zolmitriptan", "DDInter4", "Fooxacin", "Unknown"])
        levels = ("Major", "Moderate", "Minor")
        count = 2
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if count >= n_pairs:
                    return names
                w.writerow([f"DDInter{i}", names[i], f"DDInter{j}", names[j], levels[(i + j) % 3]])
                count += 1
    return names


def test_ddinter_200k_pairs(tmp_path):
    path = tmp_path / "ddinter.csv"
    names = _write_ddinter(path, 200_000)
    start = time.perf_counter()
    table = load_ddinter(path)
    load_s = time.perf_counter() - start
    assert len(table) == 200_000
    assert load_s < 30
    # aliases are canonicalised: "Acetylsalicylic acid" is our aspirin
    assert table.lookup("aspirin", "zolmitriptan").severity == "moderate"
    assert table.lookup("zolmitriptan", "fooxacin").severity == "moderate"   # Unknown -> moderate
    assert table.lookup(names[0], names[1]).severity == "moderate"        # (0 + 1) % 3 -> Moderate
    start = time.perf_counter()
    for k in range(10_000):
        table.lookup(names[k % 300], names[300 + k % 500])
    per_lookup_us = (time.perf_counter() - start) / 10_000 * 1e6
    assert per_lookup_us < 20  # constant-time dict access
    checker = InteractionChecker(table)
    hits = checker.check(f"I take {names[5]} and {names[7]}")
    assert [(h["drug_a"], h["drug_b"]) for h in hits] == [(names[5], names[7])]
