"""The documented vocabulary of diagnoses and history for patient files.

A patient file names diagnoses and history items by key (``"crps_1"``) or by code:
ICD-10-CM (``"G90.511"``, matched by the category prefix listed) or SNOMED CT (the
concept id, ``"734947007"``). Anything else is an error listing the keys, so that a typo
never silently drops a contraindication.

>>> resolve_diagnosis("G90.511")
'crps_1'
>>> resolve_history("38341003")
'hypertension'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ketapain.errors import InvalidValueError

__all__ = [
    "DIAGNOSES",
    "HISTORY",
    "Term",
    "resolve_diagnosis",
    "resolve_history",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Term:
    """A vocabulary entry: key, words, ICD-10-CM prefixes and SNOMED CT ids."""

    key: str
    label: str
    icd10cm: tuple[str, ...] = ()
    snomed: tuple[str, ...] = ()


def _terms(*terms: Term) -> dict[str, Term]:
    return {t.key: t for t in terms}


# ICD-10-CM and SNOMED CT codes of the pain conditions: clinical reference §5.3.
DIAGNOSES: Final = _terms(
    Term(
        key="crps_1",
        label="complex regional pain syndrome type I",
        icd10cm=("G90.5",),
        snomed=("734947007",),
    ),
    Term(
        key="crps_2",
        label="complex regional pain syndrome type II (causalgia)",
        icd10cm=("G56.4", "G57.7"),
    ),
    Term(key="fibromyalgia", label="fibromyalgia", icd10cm=("M79.7",), snomed=("203082005",)),
    Term(
        key="neuropathic_pain", label="neuropathic pain", icd10cm=("M79.2",), snomed=("247398009",)
    ),
    Term(
        key="diabetic_neuropathy",
        label="painful diabetic neuropathy",
        icd10cm=("E11.40", "E11.42", "E10.40", "E10.42"),
        snomed=("230572002",),
    ),
    Term(
        key="postherpetic_neuralgia",
        label="postherpetic neuralgia",
        icd10cm=("B02.22", "B02.23", "B02.29"),
    ),
    Term(key="phantom_limb_pain", label="phantom limb pain", icd10cm=("G54.6",)),
    Term(
        key="spinal_cord_injury_pain",
        label="central pain after spinal cord injury",
        icd10cm=("G89.0",),
    ),
    Term(
        key="chronic_pain", label="chronic pain", icd10cm=("G89.29", "G89.4"), snomed=("82423001",)
    ),
    Term(key="low_back_pain", label="low back pain", icd10cm=("M54.5",)),
    Term(key="migraine", label="migraine or chronic headache"),
    Term(key="cancer_pain", label="cancer pain"),
    Term(key="ischemic_pain", label="ischaemic pain"),
)

# History items that screening rules use. ICD-10-CM categories: NCHS ICD-10-CM FY2025.
HISTORY: Final = _terms(
    # Cardiovascular: poorly controlled disease is a contraindication (Cohen 2018).
    Term(key="uncontrolled_hypertension", label="uncontrolled hypertension", icd10cm=("I16",)),
    Term(key="unstable_angina", label="unstable angina", icd10cm=("I20.0",), snomed=("4557003",)),
    Term(
        key="recent_myocardial_infarction",
        label="myocardial infarction in the last 4 weeks",
        icd10cm=("I21", "I22"),
        snomed=("22298006",),
    ),
    Term(key="decompensated_heart_failure", label="decompensated heart failure"),
    Term(
        key="poorly_controlled_cardiovascular_disease",
        label="poorly controlled cardiovascular disease",
    ),
    Term(key="severe_cardiovascular_disease", label="severe cardiovascular disease"),
    # Cardiovascular disease or risk: baseline ECG (Cohen 2018).
    Term(
        key="hypertension",
        label="hypertension (controlled)",
        icd10cm=("I10",),
        snomed=("38341003",),
    ),
    Term(
        key="coronary_artery_disease",
        label="coronary artery disease (stable)",
        icd10cm=("I25",),
        snomed=("53741008",),
    ),
    Term(
        key="heart_failure",
        label="heart failure (compensated)",
        icd10cm=("I50",),
        snomed=("84114007",),
    ),
    Term(key="arrhythmia", label="arrhythmia", icd10cm=("I47", "I48", "I49"), snomed=("49436004",)),
    Term(
        key="cardiovascular_risk_factors",
        label="cardiovascular risk factors (diabetes, smoking, dyslipidaemia, family history)",
    ),
    # Pregnancy (the file's "pregnant" flag says the same).
    Term(key="pregnancy", label="pregnancy", icd10cm=("Z33.1",), snomed=("77386006",)),
    # Psychiatric.
    Term(
        key="active_psychosis",
        label="active psychosis",
        icd10cm=("F23", "F29"),
        snomed=("69322001",),
    ),
    Term(
        key="schizophrenia",
        label="schizophrenia (not acutely psychotic)",
        icd10cm=("F20",),
        snomed=("58214004",),
    ),
    # Liver.
    Term(
        key="severe_hepatic_disease",
        label="severe hepatic disease (e.g. hepatic failure)",
        icd10cm=("K72",),
        snomed=("59927004",),
    ),
    Term(
        key="moderate_hepatic_disease",
        label="moderate hepatic disease (e.g. compensated cirrhosis)",
        icd10cm=("K74.6",),
        snomed=("19943007",),
    ),
    Term(key="chronic_hepatitis", label="chronic hepatitis", icd10cm=("B18",)),
    Term(key="alcohol_misuse", label="alcohol misuse", icd10cm=("F10",), snomed=("66590003",)),
    # Pressure in the skull or the eye.
    Term(
        key="elevated_intracranial_pressure",
        label="elevated intracranial pressure",
        icd10cm=("G93.2",),
    ),
    Term(
        key="elevated_intraocular_pressure",
        label="elevated intraocular pressure",
        icd10cm=("H40.05",),
    ),
    Term(key="glaucoma", label="glaucoma", icd10cm=("H40",), snomed=("23986001",)),
    # Substance use.
    Term(
        key="active_substance_misuse",
        label="active substance misuse",
        icd10cm=("F11", "F12", "F13", "F14", "F15", "F16", "F18", "F19"),
        snomed=("66214007",),
    ),
    Term(key="substance_misuse_history", label="substance misuse in the past (in remission)"),
)


def _resolve(item: object, vocab: dict[str, Term], field: str) -> str:
    if not isinstance(item, str) or not item.strip():
        raise InvalidValueError(field, "a key or an ICD-10-CM / SNOMED CT code", item)
    text = item.strip()
    if text in vocab:
        return text
    code = text.upper()
    if code.isdigit():
        hits = [t.key for t in vocab.values() if code in t.snomed]
    else:
        # The longest matching prefix wins: H40.05 is elevated IOP, H40.1 glaucoma.
        matches = [(len(p), t.key) for t in vocab.values() for p in t.icd10cm if code.startswith(p)]
        hits = [max(matches)[1]] if matches else []
    if not hits:
        raise InvalidValueError(
            field, f"one of {', '.join(sorted(vocab))} or a code listed in the README", item
        )
    return hits[0]


def resolve_diagnosis(item: object, field: str = "diagnoses") -> str:
    """The diagnosis key for a key or code."""
    return _resolve(item, DIAGNOSES, field)


def resolve_history(item: object, field: str = "history") -> str:
    """The history key for a key or code."""
    return _resolve(item, HISTORY, field)
