"""Tests of ketapain.protocols.vocabulary: diagnosis and history keys, ICD-10-CM and SNOMED."""

from __future__ import annotations

import re

import pytest

from ketapain.errors import InvalidValueError
from ketapain.protocols.vocabulary import DIAGNOSES, HISTORY, resolve_diagnosis, resolve_history


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("G90.511", "crps_1"),
        ("g90.59", "crps_1"),
        (" G90.5 ", "crps_1"),
        ("734947007", "crps_1"),
        ("G56.41", "crps_2"),
        ("M79.7", "fibromyalgia"),
        ("203082005", "fibromyalgia"),
        ("E11.42", "diabetic_neuropathy"),
        ("B02.29", "postherpetic_neuralgia"),
        ("G89.29", "chronic_pain"),
        ("migraine", "migraine"),
    ],
)
def test_diagnosis_codes_resolve(code, key):
    """Keys, ICD-10-CM codes (by category prefix, any case) and SNOMED ids give the key."""
    assert resolve_diagnosis(code) == key


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("I10", "hypertension"),
        ("38341003", "hypertension"),
        ("I16.1", "uncontrolled_hypertension"),
        ("I20.0", "unstable_angina"),
        ("I21.4", "recent_myocardial_infarction"),
        ("I25.10", "coronary_artery_disease"),
        ("I48.91", "arrhythmia"),
        ("Z33.1", "pregnancy"),
        ("77386006", "pregnancy"),
        ("F20.9", "schizophrenia"),
        ("F29", "active_psychosis"),
        ("K72.10", "severe_hepatic_disease"),
        ("K74.60", "moderate_hepatic_disease"),
        ("F10.20", "alcohol_misuse"),
        ("G93.2", "elevated_intracranial_pressure"),
        ("H40.05", "elevated_intraocular_pressure"),
        ("H40.052", "elevated_intraocular_pressure"),
        ("H40.11", "glaucoma"),
        ("H40.1131", "glaucoma"),
        ("23986001", "glaucoma"),
        ("F11.20", "active_substance_misuse"),
        ("F14.10", "active_substance_misuse"),
        ("66214007", "active_substance_misuse"),
    ],
)
def test_history_codes_resolve(code, key):
    """History codes resolve; the longest ICD prefix wins (H40.05 raised IOP, H40.11 glaucoma)."""
    assert resolve_history(code) == key


@pytest.mark.parametrize("code", ["F17.210", "F17", "Z99.9", "123", "I1", "hypertention"])
def test_unlisted_history_codes_are_errors(code):
    """Nicotine dependence (F17) is not substance misuse; unlisted codes are errors."""
    with pytest.raises(InvalidValueError) as info:
        resolve_history(code, "history[0]")
    assert info.value.field == "history[0]"
    assert info.value.value == code


def test_unknown_key_error_lists_the_keys():
    """The error lists every history key so a typo can be corrected."""
    with pytest.raises(InvalidValueError) as info:
        resolve_history("uncontroled_hypertension")
    assert info.value.field == "history"
    listed = re.findall(r"[a-z_0-9]+", info.value.allowed)
    assert set(HISTORY) <= set(listed)


def test_unknown_diagnosis_lists_the_diagnoses():
    """An unknown diagnosis names diagnoses and lists the diagnosis keys."""
    with pytest.raises(InvalidValueError) as info:
        resolve_diagnosis("I10")
    assert info.value.field == "diagnoses"
    assert all(key in info.value.allowed for key in DIAGNOSES)


@pytest.mark.parametrize("item", [None, 3, "", "   ", ["crps_1"]])
def test_non_text_items_are_errors(item):
    """An item that is not a non-empty string is refused."""
    with pytest.raises(InvalidValueError):
        resolve_diagnosis(item)


def test_vocabulary_entries_are_consistent():
    """Every entry's key is its dictionary key, with a label; codes are upper case or digits."""
    for vocab in (DIAGNOSES, HISTORY):
        for key, term in vocab.items():
            assert term.key == key
            assert term.label
            assert all(code == code.upper() for code in term.icd10cm)
            assert all(code.isdigit() for code in term.snomed)


def test_snomed_ids_are_unique():
    """No SNOMED id names two entries of one vocabulary."""
    for vocab in (DIAGNOSES, HISTORY):
        ids = [sid for term in vocab.values() for sid in term.snomed]
        assert len(ids) == len(set(ids))
