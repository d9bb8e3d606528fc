"""Tests of ketapain.protocols.screening: contraindications, work-up, vitals, labs, drugs."""

from __future__ import annotations

import json

import pytest

from ketapain.errors import InvalidValueError
from ketapain.protocols.findings import Override, Severity, unused_overrides
from ketapain.protocols.guardrails import load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.patient import Patient
from ketapain.protocols.screening import frequent_high_dose, screen

HARD, WARN, INFO = Severity.HARD_STOP, Severity.WARNING, Severity.INFO
NORMAL_VITALS = {"sbp_mmhg": 120, "dbp_mmhg": 75, "hr_per_min": 70, "spo2_pct": 98}

# The patient of the issue (examples/patient-uncontrolled-bp.json).
ISSUE_PATIENT = {
    "age_y": 45,
    "sex": "female",
    "weight_kg": 68,
    "height_cm": 165,
    "pregnant": False,
    "diagnoses": ["crps_1"],
    "history": ["uncontrolled_hypertension"],
    "medications": [{"name": "oxycodone", "dose_mg_per_day": 40}],
    "labs": {"alt_u_per_l": 30, "ast_u_per_l": 25, "alt_uln_u_per_l": 40, "ast_uln_u_per_l": 40},
    "vitals": {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 72, "spo2_pct": 98},
}


def _patient(**changes) -> Patient:
    """A 45-year-old woman with CRPS and normal vitals, changed by ``changes``."""
    data = {
        "age_y": 45,
        "sex": "female",
        "weight_kg": 68,
        "diagnoses": ["crps_1"],
        "vitals": NORMAL_VITALS,
    }
    return Patient.from_dict(data | changes)


def _by_code(screening) -> dict[str, Severity]:
    return {f.code: f.severity for f in screening.findings}


def _find(screening, code: str):
    (found,) = [f for f in screening.findings if f.code == code]
    return found


def test_clean_patient_is_eligible_with_only_the_evidence_note():
    """Normal vitals, CRPS and nothing else: eligible, one information finding."""
    s = screen(_patient())
    assert s.eligible
    assert _by_code(s) == {"evidence_crps_1": INFO}


def test_issue_patient_is_not_eligible():
    """Uncontrolled hypertension is a hard stop; ECG and opioid load are warnings."""
    s = screen(Patient.from_dict(ISSUE_PATIENT))
    assert not s.eligible
    assert _by_code(s) == {
        "uncontrolled_hypertension": HARD,
        "workup_ecg": WARN,
        "opioid_mme": WARN,
        "evidence_crps_1": INFO,
        "interaction_oxycodone": INFO,
    }
    assert "60 MME/day" in _find(s, "opioid_mme").reason


def test_findings_are_sorted_most_serious_first():
    """Hard stops, then warnings, then information."""
    s = screen(
        _patient(
            history=["glaucoma", "active_psychosis"],
            medications=[{"name": "lamotrigine"}],
        )
    )
    ranks = [f.severity.rank for f in s.findings]
    assert ranks == sorted(ranks)
    assert ranks[0] == 0 and ranks[-1] == 2


# --- contraindications ---------------------------------------------------------------------

CONTRAINDICATIONS = (
    "pregnancy",
    "uncontrolled_hypertension",
    "unstable_angina",
    "recent_myocardial_infarction",
    "decompensated_heart_failure",
    "poorly_controlled_cardiovascular_disease",
    "severe_cardiovascular_disease",
    "active_psychosis",
    "severe_hepatic_disease",
    "elevated_intracranial_pressure",
    "elevated_intraocular_pressure",
    "active_substance_misuse",
)


@pytest.mark.parametrize("key", CONTRAINDICATIONS)
def test_each_contraindication_is_a_hard_stop_with_a_source(key):
    """A contraindication in the history is a hard stop with its code and a cited source."""
    s = screen(_patient(history=[key]))
    assert not s.eligible
    f = _find(s, key)
    assert f.severity is HARD
    assert f.blocks
    assert f.source is not None and f.source.cite()
    assert f.reason
    hard = [x.code for x in s.findings if x.severity is HARD]
    assert hard == [key]


def test_pregnancy_flag_is_a_hard_stop():
    """The pregnant flag alone gives the pregnancy hard stop, once even with the history key."""
    s = screen(_patient(pregnant=True))
    assert _by_code(s)["pregnancy"] is HARD
    both = screen(_patient(pregnant=True, history=["Z33.1"]))
    assert [f.code for f in both.findings].count("pregnancy") == 1


@pytest.mark.parametrize(
    ("protocol", "severity"),
    [
        (None, HARD),
        ("ten-weekdays", HARD),
        ("seed-outpatient", HARD),
        ("booster", HARD),
        ("single-day", WARN),
        ("continuous-100h", WARN),
    ],
)
def test_active_substance_misuse_forbids_serial_infusions(protocol, severity):
    """Hard stop for a series (or no protocol given); a warning for a single infusion."""
    p = None if protocol is None else get_protocol(protocol)
    s = screen(_patient(history=["active_substance_misuse"]), protocol=p)
    f = _find(s, "active_substance_misuse")
    assert f.severity is severity
    assert ("single infusion only" in f.reason) is (severity is WARN)


@pytest.mark.parametrize(
    "key",
    ["moderate_hepatic_disease", "schizophrenia", "glaucoma", "alcohol_misuse"],
)
def test_relative_conditions_are_warnings(key):
    """Moderate liver disease, schizophrenia, glaucoma, alcohol misuse: warnings, eligible."""
    s = screen(_patient(history=[key]))
    assert s.eligible
    f = _find(s, key)
    assert f.severity is WARN
    assert f.source is not None


def test_substance_misuse_history_is_a_warning():
    """Misuse in remission warns (universal precautions) without blocking."""
    s = screen(
        _patient(history=["substance_misuse_history"]), protocol=get_protocol("ten-weekdays")
    )
    assert s.eligible
    assert _by_code(s)["substance_misuse_history"] is WARN


# --- work-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["hypertension", "coronary_artery_disease", "arrhythmia", "cardiovascular_risk_factors"],
)
def test_cardiovascular_history_asks_for_an_ecg(key):
    """Cardiovascular disease or risk: a workup_ecg warning."""
    s = screen(_patient(history=[key]))
    assert _by_code(s)["workup_ecg"] is WARN
    assert s.eligible


def test_no_ecg_without_cardiovascular_history():
    """A patient without cardiovascular history gets no ECG request."""
    assert "workup_ecg" not in _by_code(screen(_patient(history=["glaucoma"])))


@pytest.mark.parametrize("key", ["moderate_hepatic_disease", "chronic_hepatitis", "alcohol_misuse"])
def test_liver_risk_asks_for_liver_tests(key):
    """Liver risk: workup_lft, saying that no baseline liver tests are in the file."""
    f = _find(screen(_patient(history=[key])), "workup_lft")
    assert f.severity is WARN
    assert f.reason.startswith("Liver risk")
    assert "No baseline liver tests" in f.reason


def test_liver_tests_given_are_not_reported_missing():
    """With ALT in the file the workup_lft reason does not say tests are missing."""
    labs = {"alt_u_per_l": 30, "alt_uln_u_per_l": 40}
    f = _find(screen(_patient(history=["chronic_hepatitis"], labs=labs)), "workup_lft")
    assert "No baseline liver tests" not in f.reason


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("ten-weekdays", True),
        ("ten-weekdays-40-80mg", True),
        ("continuous-100h", True),
        ("five-day-ramp", True),
        ("seed-outpatient", True),
        ("five-day-outpatient-ramp", True),
        ("single-day", False),
        ("booster", False),
        ("oral-follow-on", False),
    ],
)
def test_frequent_protocols_ask_for_liver_tests(protocol, expected):
    """5+ infusions in 14 days or a day-long infusion: workup_lft; single-day: none."""
    p = get_protocol(protocol)
    assert frequent_high_dose(p) is expected
    codes = _by_code(screen(_patient(), protocol=p))
    assert ("workup_lft" in codes) is expected
    if expected:
        assert codes["workup_lft"] is WARN


def test_missing_vitals_are_noted():
    """Without baseline vitals the screening notes they are needed (information)."""
    s = screen(_patient(vitals={"sbp_mmhg": 120}))
    assert _by_code(s)["vitals_missing"] is INFO
    assert "vitals_missing" not in _by_code(screen(_patient()))


# --- vital signs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vitals", "code", "severity"),
    [
        ({"sbp_mmhg": 85}, "sbp_out_of_range", HARD),
        ({"sbp_mmhg": 185}, "sbp_out_of_range", HARD),
        ({"dbp_mmhg": 112}, "dbp_out_of_range", HARD),
        ({"dbp_mmhg": 110}, "dbp_out_of_range", HARD),
        ({"hr_per_min": 45}, "hr_out_of_range", HARD),
        ({"hr_per_min": 155}, "hr_out_of_range", HARD),
        ({"rr_per_min": 8}, "rr_out_of_range", HARD),
        ({"rr_per_min": 32}, "rr_out_of_range", HARD),
        ({"spo2_pct": 88}, "spo2_low", HARD),
        ({"spo2_pct": 92}, "spo2_borderline", WARN),
        ({"spo2_pct": 90}, "spo2_borderline", WARN),
        ({"sbp_mmhg": 150, "dbp_mmhg": 95}, "blood_pressure_elevated", WARN),
        ({"sbp_mmhg": 180}, "blood_pressure_elevated", WARN),
        ({"dbp_mmhg": 100}, "blood_pressure_elevated", WARN),
    ],
)
def test_abnormal_vitals(vitals, code, severity):
    """Vital signs outside the limits give their finding, alone, with a source."""
    s = screen(_patient(vitals=NORMAL_VITALS | vitals))
    found = {c: sev for c, sev in _by_code(s).items() if c != "evidence_crps_1"}
    assert found == {code: severity}
    assert _find(s, code).source is not None


@pytest.mark.parametrize(
    "vitals",
    [
        {"sbp_mmhg": 90, "dbp_mmhg": 60},
        {"sbp_mmhg": 140, "dbp_mmhg": 90},
        {"hr_per_min": 50},
        {"hr_per_min": 150},
        {"rr_per_min": 10},
        {"rr_per_min": 30},
        {"spo2_pct": 93},
    ],
)
def test_vitals_at_the_limits_pass(vitals):
    """Values on the limits (90-180 mmHg, 50-150/min, 10-30/min, SpO2 93%) give no finding."""
    assert _by_code(screen(_patient(vitals=NORMAL_VITALS | vitals))) == {"evidence_crps_1": INFO}


# --- labs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labs", "code", "severity"),
    [
        ({"alt_u_per_l": 160, "alt_uln_u_per_l": 40}, "lft_above_3x_uln", HARD),
        ({"ast_u_per_l": 200, "ast_uln_u_per_l": 40}, "lft_above_3x_uln", HARD),
        ({"alt_u_per_l": 80, "alt_uln_u_per_l": 40}, "lft_above_uln", WARN),
        ({"alt_u_per_l": 120, "alt_uln_u_per_l": 40}, "lft_above_uln", WARN),
        (
            {"alt_u_per_l": 30, "alt_uln_u_per_l": 40, "ast_u_per_l": 130, "ast_uln_u_per_l": 40},
            "lft_above_3x_uln",
            HARD,
        ),
        (
            {"bilirubin_mg_per_dl": 3.6, "bilirubin_uln_mg_per_dl": 1.2},
            "bilirubin_above_2x_uln",
            HARD,
        ),
    ],
)
def test_abnormal_liver_tests(labs, code, severity):
    """ALT or AST 4x ULN and bilirubin 3x ULN are hard stops; 2-3x ULN a warning."""
    s = screen(_patient(labs=labs))
    found = {c: sev for c, sev in _by_code(s).items() if c != "evidence_crps_1"}
    assert found == {code: severity}


def test_liver_test_ratio_is_reported():
    """The reason gives the worse of ALT and AST as a multiple of its ULN."""
    labs = {"alt_u_per_l": 100, "alt_uln_u_per_l": 40, "ast_u_per_l": 70, "ast_uln_u_per_l": 35}
    assert "2.5 x ULN" in _find(screen(_patient(labs=labs)), "lft_above_uln").reason


def test_normal_liver_tests_give_no_finding():
    """ALT and AST at the ULN and bilirubin at 2x ULN give no finding."""
    labs = {
        "alt_u_per_l": 40,
        "alt_uln_u_per_l": 40,
        "ast_u_per_l": 40,
        "ast_uln_u_per_l": 40,
        "bilirubin_mg_per_dl": 2.4,
        "bilirubin_uln_mg_per_dl": 1.2,
    }
    assert _by_code(screen(_patient(labs=labs))) == {"evidence_crps_1": INFO}


@pytest.mark.parametrize(
    ("labs", "field"),
    [
        ({"alt_u_per_l": 160}, "labs.alt_uln_u_per_l"),
        ({"ast_u_per_l": 160}, "labs.ast_uln_u_per_l"),
        ({"bilirubin_mg_per_dl": 1.0}, "labs.bilirubin_uln_mg_per_dl"),
    ],
)
def test_lab_without_its_upper_limit_is_an_error(labs, field):
    """A liver test without the lab's ULN cannot be judged: the ULN field is named."""
    with pytest.raises(InvalidValueError) as info:
        screen(_patient(labs=labs))
    assert info.value.field == field


# --- diagnoses -----------------------------------------------------------------------------


def test_diagnoses_give_their_evidence_grade():
    """CRPS is information (grade B); spinal cord injury and fibromyalgia are warnings."""
    s = screen(_patient(diagnoses=["crps_2", "spinal_cord_injury_pain", "fibromyalgia"]))
    assert _by_code(s) == {
        "evidence_crps_2": INFO,
        "evidence_spinal_cord_injury_pain": WARN,
        "evidence_fibromyalgia": WARN,
    }


def test_no_diagnosis_warns():
    """A file without a pain diagnosis asks for the indication."""
    assert _by_code(screen(_patient(diagnoses=[]))) == {"no_indication": WARN}


# --- medications ---------------------------------------------------------------------------


def _medication_findings(medications, protocol=None) -> dict[str, Severity]:
    p = None if protocol is None else get_protocol(protocol)
    codes = _by_code(screen(_patient(medications=medications), protocol=p))
    codes.pop("evidence_crps_1")
    codes.pop("workup_lft", None)
    return codes


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ticlopidine", "interaction_ticlopidine"),
        ("Clarithromycin", "interaction_clarithromycin"),
        ("grapefruit", "interaction_grapefruit_juice"),
        ("rifampin", "interaction_rifampicin"),
        ("carbamazepine", "interaction_carbamazepine"),
    ],
)
@pytest.mark.parametrize(
    ("protocol", "severity"),
    [(None, WARN), ("seed-outpatient", WARN), ("oral-follow-on", WARN), ("ten-weekdays", INFO)],
)
def test_cyp_interactions_matter_for_the_oral_phase(name, code, protocol, severity):
    """CYP inhibitors and inducers warn when oral ketamine is given, else are information."""
    assert _medication_findings([{"name": name}], protocol) == {code: severity}


def test_cyp_interaction_cites_its_study():
    """Clarithromycin cites Hagelberg 2010."""
    s = screen(_patient(medications=[{"name": "clarithromycin"}]))
    assert _find(s, "interaction_clarithromycin").source.year == 2010
    assert "Hagelberg" in _find(s, "interaction_clarithromycin").source.authors


@pytest.mark.parametrize(
    ("medications", "load_warning"),
    [
        ([{"name": "lorazepam", "dose_mg_per_day": 2}], True),
        ([{"name": "diazepam", "dose_mg_per_day": 5}], False),
        ([{"name": "diazepam", "dose_mg_per_day": 8}], False),
        (
            [
                {"name": "diazepam", "dose_mg_per_day": 5},
                {"name": "temazepam", "dose_mg_per_day": 10},
            ],
            True,
        ),
        ([{"name": "clonazepam"}], False),
    ],
)
def test_benzodiazepine_load(medications, load_warning):
    """Above 8 mg diazepam-equivalent a day (lorazepam 2 mg = 20 mg) warns; 5 or 8 mg does not."""
    codes = _medication_findings(medications)
    assert ("benzodiazepine_load" in codes) is load_warning
    if load_warning:
        assert codes["benzodiazepine_load"] is WARN
    assert all(codes[f"interaction_{m['name']}"] is INFO for m in medications)


def test_benzodiazepine_load_gives_the_equivalent():
    """Lorazepam 2 mg/day is reported as 20 mg diazepam-equivalent."""
    s = screen(_patient(medications=[{"name": "lorazepam", "dose_mg_per_day": 2}]))
    assert _find(s, "benzodiazepine_load").reason.startswith("Benzodiazepines 20 mg")


@pytest.mark.parametrize(
    ("medications", "severity", "mme"),
    [
        ([{"name": "oxycodone", "dose_mg_per_day": 40}], WARN, "60"),
        ([{"name": "fentanyl patch", "dose_mcg_per_h": 12}], INFO, "29"),
        ([{"name": "morphine", "dose_mg_per_day": 50}], WARN, "50"),
        (
            [
                {"name": "tramadol", "dose_mg_per_day": 200},
                {"name": "codeine", "dose_mg_per_day": 60},
            ],
            INFO,
            "49",
        ),
    ],
)
def test_opioid_load_in_mme(medications, severity, mme):
    """Oxycodone 40 mg/day = 60 MME warns; a 12 ug/h patch = 28.8 MME is information."""
    s = screen(_patient(medications=medications))
    f = _find(s, "opioid_mme")
    assert f.severity is severity
    assert f.reason.startswith(f"Opioids {mme} MME/day")


def test_opioid_loads_add_up():
    """Oxycodone 40 mg/day (60 MME) and a 12 ug/h fentanyl patch (28.8 MME): 89 MME/day."""
    medications = [
        {"name": "oxycodone", "dose_mg_per_day": 40},
        {"name": "fentanyl", "dose_mcg_per_h": 12},
    ]
    f = _find(screen(_patient(medications=medications)), "opioid_mme")
    assert f.severity is WARN
    assert f.reason.startswith("Opioids 89 MME/day")


def test_opioid_without_dose_is_listed_without_load():
    """Buprenorphine has no MME factor: listed, no load finding."""
    assert _medication_findings([{"name": "buprenorphine", "dose_mg_per_day": 0.4}]) == {
        "interaction_buprenorphine": INFO
    }


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("lamotrigine", INFO),
        ("gabapentin", INFO),
        ("itraconazole", INFO),
        ("theophylline", WARN),
        ("aminophylline", WARN),
        ("methylphenidate", WARN),
        ("phenelzine", WARN),
    ],
)
def test_other_interactions(name, severity):
    """Lamotrigine is information; theophylline and stimulants warn."""
    assert _medication_findings([{"name": name}]) == {f"interaction_{name}": severity}


def test_unknown_medications_are_reported_unchecked():
    """Medications not in the table are listed in one information finding."""
    s = screen(_patient(medications=[{"name": "vitamin D"}, {"name": "Levothyroxine"}]))
    f = _find(s, "medications_unchecked")
    assert f.severity is INFO
    assert f.reason.endswith("vitamin D, Levothyroxine.")
    assert s.eligible


# --- weight and the drug library -----------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "code"), [(25, "weight_kg.hard_min"), (210, "weight_kg.hard_max")]
)
def test_weight_outside_the_drug_library_bounds_is_a_hard_stop(weight, code):
    """25 or 210 kg is outside the 30-200 kg of weight-based dosing: hard stop with limits."""
    limits = load_drug_library().limits_for("outpatient")
    s = screen(_patient(weight_kg=weight), limits=limits)
    assert _by_code(s)[code] is HARD
    assert not s.eligible
    assert screen(_patient(weight_kg=weight)).eligible


@pytest.mark.parametrize("weight", [30, 200])
def test_weight_at_the_bounds_passes(weight):
    """30 and 200 kg are within the bounds."""
    limits = load_drug_library().limits_for("outpatient")
    assert screen(_patient(weight_kg=weight), limits=limits).eligible


# --- JSON form and overrides ---------------------------------------------------------------


def test_json_form():
    """Exactly eligible, findings and overrides; each finding exactly four keys."""
    s = screen(Patient.from_dict(ISSUE_PATIENT))
    d = json.loads(json.dumps(s.as_dict()))
    assert set(d) == {"eligible", "findings", "overrides"}
    assert d["eligible"] is False
    assert d["overrides"] == []
    for f in d["findings"]:
        assert set(f) == {"severity", "code", "reason", "source"}
        assert f["severity"] in {"hard_stop", "warning", "info"}
    assert d["findings"][0] == {
        "severity": "hard_stop",
        "code": "uncontrolled_hypertension",
        "reason": s.findings[0].reason,
        "source": s.findings[0].source.cite(),
    }


def test_override_makes_the_patient_eligible():
    """An override of every hard stop makes the patient eligible and is kept in the record."""
    override = Override(code="uncontrolled_hypertension", clinician="Dr Jones", reason="treated")
    s = screen(Patient.from_dict(ISSUE_PATIENT), overrides=[override])
    assert s.eligible
    assert _find(s, "uncontrolled_hypertension").override is override
    assert s.overrides == (override,)
    d = s.as_dict()
    assert d["eligible"] is True
    assert [o["code"] for o in d["overrides"]] == ["uncontrolled_hypertension"]
    assert d["overrides"][0]["clinician"] == "Dr Jones"


def test_partial_overrides_leave_the_patient_ineligible():
    """Overriding one of two hard stops is not enough."""
    override = Override(code="pregnancy", clinician="Dr Jones", reason="planned")
    s = screen(_patient(pregnant=True, history=["active_psychosis"]), overrides=[override])
    assert not s.eligible
    assert [f.code for f in s.findings if f.blocks] == ["active_psychosis"]


def test_unknown_override_codes_are_reported():
    """An override whose code matches no hard stop is listed by unused_overrides."""
    overrides = [
        Override(code="uncontrolled_hypertension", clinician="Dr Jones", reason="treated"),
        Override(code="uncontroled_hypertension", clinician="Dr Jones", reason="typo"),
        Override(code="workup_ecg", clinician="Dr Jones", reason="a warning"),
    ]
    s = screen(Patient.from_dict(ISSUE_PATIENT), overrides=overrides)
    assert unused_overrides(s.findings, s.overrides) == [
        "uncontroled_hypertension",
        "workup_ecg",
    ]
    assert _find(s, "workup_ecg").override is None
