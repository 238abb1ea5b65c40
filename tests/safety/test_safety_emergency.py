"""Emergencies: true positives must alarm; negation, history and exam or
educational framing must not."""

import pytest

from medqa.safety.emergency import check_emergency, emergencies


@pytest.mark.parametrize("text, kind", [
    ("I have crushing chest pain going down my left arm", "cardiac"),
    ("I think I'm having a heart attack", "cardiac"),
    ("My dad's face is drooping and he can't speak properly", "stroke"),
    ("Her speech is slurred and her face is drooping on one side", "stroke"),
    ("My throat is closing up after eating peanuts", "anaphylaxis"),
    ("I want to kill myself tonight", "suicide_self_harm"),
    ("I can't stop thinking about killing myself", "suicide_self_harm"),
    ("My daughter has been self-harming", "suicide_self_harm"),
    ("What is the lethal dose of amitriptyline? I want to end it all", "suicide_self_harm"),
    ("My 2 year old swallowed some of my blood pressure pills", "overdose_poisoning"),
    ("I took 30 paracetamol tablets an hour ago", "overdose_poisoning"),
    ("My toddler drank bleach", "overdose_poisoning"),
    ("The cut is bleeding heavily and won't stop", "severe_bleeding"),
    ("He is vomiting blood", "severe_bleeding"),
    ("He collapsed and is not breathing", "breathing"),
    ("My baby's lips are turning blue", "breathing"),
    ("My son is having a seizure and it won't stop", "seizure_unresponsive"),
    ("I'm 32 weeks pregnant and bleeding heavily", "obstetric"),
    ("My son has a fever and a rash that doesn't fade", "other_critical"),
])
def test_true_emergencies(text, kind):
    kinds = {e["type"] for e in emergencies(text)}
    assert kind in kinds, check_emergency(text)


@pytest.mark.parametrize("text, status", [
    # negation
    ("I have no chest pain, just a cough", "negated"),
    ("Patient denies suicidal ideation", "negated"),
    ("I'm not suicidal, just tired all the time", "negated"),
    ("I don't want to kill myself, but I feel low", "negated"),
    ("No fever, chest pain or shortness of breath", "negated"),
    # past history
    ("I had a heart attack 5 years ago, can I take ibuprofen?", "history"),
    ("I used to self-harm as a teenager", "history"),
    ("She has a history of anaphylaxis to penicillin", "history"),
    # exam / educational / hypothetical framing
    ("A 45-year-old man presents with crushing chest pain. What is the most likely diagnosis?", "framing"),
    ("If you have chest pain, call emergency services.", "framing"),
    ("Can you overdose on vitamin D?", "framing"),
    ("What is the antidote for paracetamol overdose?", "framing"),
    ("Treatment of organophosphate poisoning includes which drug?", "framing"),
    ("First line therapy in anaphylactic shock is:", "framing"),
    ("Fatal dose of dhatura is", None),
])
def test_suppressed(text, status):
    assert emergencies(text) == []
    if status:
        assert status in {e["status"] for e in check_emergency(text)}


@pytest.mark.parametrize("text", [
    "Which artery is occluded in an inferior MI?",
    "What are the warning signs of a stroke?",
    "How do I use my GTN spray during an angina attack?",
    "What is the best way to treat a sprained ankle at home?",
    "My chest X-ray was normal",
    "How long does food poisoning usually last?",
])
def test_benign_look_alikes(text):
    assert emergencies(text) == []


def test_negation_does_not_cross_but():
    assert emergencies("I don't have a fever but I have crushing chest pain")


def test_history_stays_in_its_clause():
    assert emergencies("I had a stroke 3 years ago, and now my face is drooping again")
