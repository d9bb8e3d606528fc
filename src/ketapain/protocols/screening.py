"""Eligibility screening: contraindications, work-up, baseline vitals, labs and drug
interactions, each as a :class:`~ketapain.protocols.findings.Finding`.

Rules follow the 2018 ASRA/AAPM/ASA chronic-pain guideline (Cohen 2018), the seed
clinic's exclusions (seed 002: severe cardiovascular disease, liver dysfunction, raised
intracranial pressure), published vital-sign limits and interaction studies; every
finding names its source. The patient is eligible when no hard stop stands, or every
hard stop is overridden by a named clinician with a reason.

>>> from ketapain.protocols.patient import Patient
>>> p = Patient.from_dict({"age_y": 45, "sex": "female", "weight_kg": 68,
...     "pregnant": True, "diagnoses": ["crps_1"]})
>>> s = screen(p)
>>> s.eligible, [f.code for f in s.findings if f.severity is Severity.HARD_STOP]
(False, ['pregnancy'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import (
    ALDRETE_1995,
    ANDRASHKO_2020,
    DOWELL_2022,
    FDA_2009_DILI,
    HARTLE_2016,
    MO_2020,
    NOPPERS_2011_LIVER,
    SPRAVATO_LABEL,
)
from ketapain.protocols.findings import (
    Finding,
    Override,
    Severity,
    apply_overrides,
    blocking,
)
from ketapain.protocols.guardrails import LimitSet, Quantity
from ketapain.protocols.interactions import (
    BENZODIAZEPINE_THRESHOLD_MG_DIAZEPAM,
    MME_THRESHOLD_PER_DAY,
    Kind,
    lookup,
    mme_per_day,
)
from ketapain.protocols.patient import Patient
from ketapain.protocols.schema import Protocol
from ketapain.protocols.vocabulary import DIAGNOSES, HISTORY
from ketapain.sources import COHEN_2018, Source

__all__ = ["Screening", "frequent_high_dose", "medication_findings", "screen"]

HARD, WARN, INFO = Severity.HARD_STOP, Severity.WARNING, Severity.INFO
SEED_002: Final = Source(
    authors="Calliope Health",
    year=None,
    journal="Clinic page 'Ketamine infusion for chronic pain' (seed 002)",
    locator="severe cardiovascular disease, liver dysfunction or elevated intracranial "
    "pressure generally do not qualify; baseline liver and kidney tests",
)
_ASRA = COHEN_2018
_CV_POOR: Final = (
    "uncontrolled_hypertension",
    "unstable_angina",
    "recent_myocardial_infarction",
    "decompensated_heart_failure",
    "poorly_controlled_cardiovascular_disease",
)
_CV_ANY: Final = (
    *_CV_POOR,
    "severe_cardiovascular_disease",
    "hypertension",
    "coronary_artery_disease",
    "heart_failure",
    "arrhythmia",
    "cardiovascular_risk_factors",
)
_LIVER_RISK: Final = (
    "severe_hepatic_disease",
    "moderate_hepatic_disease",
    "chronic_hepatitis",
    "alcohol_misuse",
)
# Evidence grade for each diagnosis (Cohen 2018): CRPS B, spinal cord injury C, others D.
_EVIDENCE: Final = {
    "crps_1": (INFO, "moderate evidence of relief up to 12 weeks (grade B)"),
    "crps_2": (INFO, "moderate evidence of relief up to 12 weeks for CRPS (grade B)"),
    "spinal_cord_injury_pain": (WARN, "weak evidence, short-term relief only (grade C)"),
}
_HIGH_DOSE_SESSION_H: Final = 24.0  # continuous multi-day infusions (Noppers 2011: 100 h)
_FREQUENT_SESSIONS: Final = (5, 14)  # 5 or more infusions within 14 days


@dataclass(frozen=True, slots=True, kw_only=True)
class Screening:
    """The result: findings (most serious first) and whether the patient may be treated."""

    findings: tuple[Finding, ...]
    overrides: tuple[Override, ...] = ()

    @property
    def eligible(self) -> bool:
        """True when no hard stop stands un-overridden."""
        return not blocking(self.findings)

    def as_dict(self) -> dict[str, Any]:
        """``{"eligible", "findings": [{severity, code, reason, source}], "overrides"}``."""
        return {
            "eligible": self.eligible,
            "findings": [f.as_dict() for f in self.findings],
            "overrides": [o.as_dict() for o in self.overrides],
        }


def frequent_high_dose(protocol: Protocol) -> bool:
    """True for a continuous infusion of a day or more, or 5+ infusions within 14 days."""
    slots = [s for s in protocol.slots() if not s.phase.oral]
    if any(s.schedule.end_h() - s.schedule.start_h() >= _HIGH_DOSE_SESSION_H for s in slots):
        return True
    n, window = _FREQUENT_SESSIONS
    days = [s.day for s in slots]
    return any(days[i + n - 1] - days[i] < window for i in range(len(days) - n + 1))


def screen(
    patient: Patient,
    *,
    protocol: Protocol | None = None,
    limits: LimitSet | None = None,
    overrides: Iterable[Override] = (),
) -> Screening:
    """Screen ``patient`` (for ``protocol`` when given) and apply ``overrides``."""
    f: list[Finding] = []
    f += _contraindications(patient, protocol)
    f += _workup(patient, protocol)
    f += _vitals(patient)
    f += _labs(patient)
    f += _diagnoses(patient)
    f += _medications(patient, protocol)
    if limits is not None:
        f += limits.check(Quantity.WEIGHT_KG, patient.weight_kg, what="Body weight")
    f.sort(key=lambda x: x.severity.rank)
    ov = tuple(overrides)
    return Screening(findings=tuple(apply_overrides(f, ov)), overrides=ov)


def _finding(sev: Severity, code: str, reason: str, source: Source | None) -> Finding:
    return Finding(severity=sev, code=code, reason=reason, source=source)


def _contraindications(p: Patient, protocol: Protocol | None) -> list[Finding]:
    out = []
    if p.pregnant or p.has("pregnancy"):
        out.append(
            _finding(
                HARD,
                "pregnancy",
                "Pregnancy is a contraindication to ketamine infusion for chronic pain.",
                _ASRA.at("relative contraindications: pregnancy (grade B)"),
            )
        )
    for key in _CV_POOR:
        if p.has(key):
            out.append(
                _finding(
                    HARD,
                    key,
                    f"{_cap(HISTORY[key].label)}: poorly controlled "
                    "cardiovascular disease is a contraindication; ketamine raises "
                    "blood pressure and heart rate.",
                    _ASRA.at(
                        "relative contraindications: poorly controlled cardiovascular disease"
                    ),
                )
            )
    if p.has("severe_cardiovascular_disease"):
        out.append(
            _finding(
                HARD,
                "severe_cardiovascular_disease",
                "Severe cardiovascular disease excludes ketamine infusion at this clinic.",
                SEED_002,
            )
        )
    if p.has("active_psychosis"):
        out.append(
            _finding(
                HARD,
                "active_psychosis",
                "Active psychosis is a contraindication; ketamine causes psychotomimetic effects.",
                _ASRA.at("relative contraindications: active psychosis (grade B)"),
            )
        )
    if p.has("schizophrenia"):
        out.append(
            _finding(
                WARN,
                "schizophrenia",
                "Schizophrenia: ketamine can provoke psychotic "
                "symptoms; only if stable and with the psychiatrist's agreement.",
                _ASRA.at("active psychosis is a contraindication"),
            )
        )
    if p.has("severe_hepatic_disease"):
        out.append(
            _finding(
                HARD,
                "severe_hepatic_disease",
                "Severe hepatic disease: avoid ketamine.",
                _ASRA.at("hepatic disease: avoid in severe (grade C)"),
            )
        )
    if p.has("moderate_hepatic_disease"):
        out.append(
            _finding(
                WARN,
                "moderate_hepatic_disease",
                "Moderate hepatic disease: use "
                "judiciously, with liver tests before and after (the seed clinic "
                "generally excludes liver dysfunction).",
                _ASRA.at("hepatic disease: caution with monitoring in moderate (grade C)"),
            )
        )
    for key, word in (
        ("elevated_intracranial_pressure", "intracranial"),
        ("elevated_intraocular_pressure", "intraocular"),
    ):
        if p.has(key):
            out.append(
                _finding(
                    HARD,
                    key,
                    f"Elevated {word} pressure: do not use ketamine, or only "
                    "lower doses with extreme caution.",
                    _ASRA.at("elevated intracranial or intraocular pressure (grade C)"),
                )
            )
    if p.has("glaucoma"):
        out.append(
            _finding(
                WARN,
                "glaucoma",
                "Glaucoma: confirm intraocular pressure is controlled; ketamine can raise it.",
                _ASRA.at("elevated intraocular pressure (grade C)"),
            )
        )
    if p.has("active_substance_misuse"):
        serial = protocol is None or sum(1 for s in protocol.slots() if not s.phase.oral) > 1
        sev = HARD if serial else WARN
        what = "serial infusions are contraindicated" if serial else "single infusion only"
        out.append(
            _finding(
                sev,
                "active_substance_misuse",
                f"Active substance misuse: {what}; use universal precautions.",
                _ASRA.at("no serial infusions with active substance abuse (grade C)"),
            )
        )
    for key in ("substance_misuse_history", "alcohol_misuse"):
        if p.has(key):
            out.append(
                _finding(
                    WARN,
                    key,
                    f"{_cap(HISTORY[key].label)}: ketamine is "
                    "Schedule III; use universal precautions, and if misuse is "
                    "active give no serial infusions.",
                    _ASRA.at("universal precautions to monitor for abuse"),
                )
            )
    return out


def _workup(p: Patient, protocol: Protocol | None) -> list[Finding]:
    out = []
    if p.has(*_CV_ANY):
        out.append(
            _finding(
                WARN,
                "workup_ecg",
                "Cardiovascular disease or risk: obtain a "
                "baseline ECG (rule out poorly controlled ischaemic heart "
                "disease).",
                _ASRA.at(
                    "pre-infusion testing: baseline ECG with "
                    "suspected or high cardiovascular risk (grade C)"
                ),
            )
        )
    high = protocol is not None and frequent_high_dose(protocol)
    if p.has(*_LIVER_RISK) or high:
        why = (
            "liver risk"
            if p.has(*_LIVER_RISK)
            else "frequent infusions (5 or more in 14 days) or a continuous multi-day infusion"
        )
        missing = p.labs.alt_u_per_l is None and p.labs.ast_u_per_l is None
        tail = " No baseline liver tests are in the file." if missing else ""
        out.append(
            _finding(
                WARN,
                "workup_lft",
                f"{_cap(why)}: liver tests before the first infusion and after the series.{tail}",
                _ASRA.at(
                    "baseline and post-infusion LFTs with liver risk or expected "
                    "high doses at frequent intervals (grade C)"
                ),
            )
        )
    v = p.vitals
    if None in (v.sbp_mmhg, v.dbp_mmhg, v.hr_per_min, v.spo2_pct):
        out.append(
            _finding(
                INFO,
                "vitals_missing",
                "Baseline blood pressure, heart rate and SpO2 "
                "are needed before the first infusion.",
                SPRAVATO_LABEL.at("assess blood pressure before dosing"),
            )
        )
    return out


def _outside(value: float | None, low: float, high: float) -> bool:
    return value is not None and not low <= value <= high


def _vitals(p: Patient) -> list[Finding]:
    v, out = p.vitals, []
    mo = MO_2020
    if _outside(v.sbp_mmhg, 90, 180):
        out.append(
            _finding(
                HARD,
                "sbp_out_of_range",
                f"Systolic pressure {v.sbp_mmhg:g} mmHg is outside 90-180 mmHg: do not start.",
                mo,
            )
        )
    if v.dbp_mmhg is not None and v.dbp_mmhg >= 110:
        out.append(
            _finding(
                HARD,
                "dbp_out_of_range",
                f"Diastolic pressure {v.dbp_mmhg:g} mmHg is "
                "110 mmHg or more: do not start until below 180/110.",
                HARTLE_2016,
            )
        )
    if (v.sbp_mmhg is not None and 140 < v.sbp_mmhg <= 180) or (
        v.dbp_mmhg is not None and 90 < v.dbp_mmhg < 110
    ):
        out.append(
            _finding(
                WARN,
                "blood_pressure_elevated",
                "Blood pressure above 140/90 mmHg: "
                "ketamine raises it further; recheck and treat before starting.",
                SPRAVATO_LABEL,
            )
        )
    if _outside(v.hr_per_min, 50, 150):
        out.append(
            _finding(
                HARD,
                "hr_out_of_range",
                f"Heart rate {v.hr_per_min:g}/min is outside 50-150/min: do not start.",
                mo,
            )
        )
    if _outside(v.rr_per_min, 10, 30):
        out.append(
            _finding(
                HARD,
                "rr_out_of_range",
                f"Respiratory rate {v.rr_per_min:g}/min is outside 10-30/min: do not start.",
                mo,
            )
        )
    if v.spo2_pct is not None and v.spo2_pct < 90:
        out.append(
            _finding(
                HARD, "spo2_low", f"SpO2 {v.spo2_pct:g}% is below 90%: do not start.", ALDRETE_1995
            )
        )
    elif v.spo2_pct is not None and v.spo2_pct <= 92:
        out.append(
            _finding(
                WARN,
                "spo2_borderline",
                f"SpO2 {v.spo2_pct:g}% is 92% or less on room air: find the cause before sedation.",
                ALDRETE_1995,
            )
        )
    return out


def _ratio(value: float | None, uln: float | None, field: str) -> float | None:
    if value is None:
        return None
    if uln is None:
        raise InvalidValueError(
            f"labs.{field.replace('_u_per_l', '_uln_u_per_l')}", f"given with labs.{field}", None
        )
    return value / uln


def _labs(p: Patient) -> list[Finding]:
    lab, out = p.labs, []
    ratios = [
        r
        for r in (
            _ratio(lab.alt_u_per_l, lab.alt_uln_u_per_l, "alt_u_per_l"),
            _ratio(lab.ast_u_per_l, lab.ast_uln_u_per_l, "ast_u_per_l"),
        )
        if r is not None
    ]
    worst = max(ratios, default=0.0)
    if worst > 3:
        out.append(
            _finding(
                HARD,
                "lft_above_3x_uln",
                f"Aminotransferase {worst:.1f} x ULN (above "
                "3 x): ketamine-induced liver injury has presented this way; hold "
                "infusions and recheck weekly.",
                NOPPERS_2011_LIVER,
            )
        )
    elif worst > 1:
        out.append(
            _finding(
                WARN,
                "lft_above_uln",
                f"Aminotransferase {worst:.1f} x ULN: liver "
                "dysfunction; monitor liver tests before and after (the seed "
                "clinic generally excludes liver dysfunction).",
                _ASRA.at("moderate hepatic disease: judiciously with monitoring"),
            )
        )
    if lab.bilirubin_mg_per_dl is not None:
        if lab.bilirubin_uln_mg_per_dl is None:
            raise InvalidValueError(
                "labs.bilirubin_uln_mg_per_dl", "given with labs.bilirubin_mg_per_dl", None
            )
        b = lab.bilirubin_mg_per_dl / lab.bilirubin_uln_mg_per_dl
        if b > 2:
            out.append(
                _finding(
                    HARD,
                    "bilirubin_above_2x_uln",
                    f"Total bilirubin {b:.1f} x ULN "
                    "(above 2 x): hold ketamine until the cause is known.",
                    FDA_2009_DILI,
                )
            )
    return out


def _diagnoses(p: Patient) -> list[Finding]:
    if not p.diagnoses:
        return [
            _finding(
                WARN,
                "no_indication",
                "No pain diagnosis in the file: record the indication.",
                _ASRA,
            )
        ]
    out = []
    for key in p.diagnoses:
        sev, words = _EVIDENCE.get(
            key, (WARN, "weak or no evidence of benefit beyond the infusion (grade D)")
        )
        out.append(
            _finding(
                sev,
                f"evidence_{key}",
                f"{_cap(DIAGNOSES[key].label)}: {words}.",
                _ASRA.at("evidence by condition"),
            )
        )
    return out


def medication_findings(patient: Patient, *, protocol: Protocol | None = None) -> list[Finding]:
    """Interactions and sedative load of the patient's medications, for ``protocol``'s
    routes (an oral protocol makes the CYP interactions warnings), most serious first."""
    return sorted(_medications(patient, protocol), key=lambda x: x.severity.rank)


def _medications(p: Patient, protocol: Protocol | None) -> list[Finding]:
    oral = protocol is None or bool(protocol.oral_doses)
    out: list[Finding] = []
    diazepam_mg = mme = 0.0
    unknown = []
    for med in p.medications:
        it = lookup(med.name)
        if it is None:
            unknown.append(med.name)
            continue
        code = f"interaction_{it.name.replace(' ', '_')}"
        if it.kind in (Kind.RAISES_ORAL_EXPOSURE, Kind.LOWERS_EXPOSURE):
            phase = (
                "the oral phase: adjust or avoid oral ketamine"
                if oral
                else ("oral ketamine; little effect on IV infusions")
            )
            out.append(
                _finding(
                    WARN if oral else INFO,
                    code,
                    f"{_cap(it.name)}: {it.effect}. Matters most for {phase}.",
                    it.source,
                )
            )
        elif it.kind is Kind.BENZODIAZEPINE:
            if med.dose_mg_per_day is not None and it.factor is not None:
                diazepam_mg += med.dose_mg_per_day * it.factor
            out.append(_finding(INFO, code, f"{_cap(it.name)}: {it.effect}.", it.source))
        elif it.kind is Kind.OPIOID:
            opioid = mme_per_day(
                med.name, dose_mg_per_day=med.dose_mg_per_day, dose_mcg_per_h=med.dose_mcg_per_h
            )
            if opioid is not None and opioid.mme_per_day is not None:
                mme += opioid.mme_per_day
            out.append(_finding(INFO, code, f"{_cap(it.name)}: {it.effect}.", it.source))
        else:
            sev = WARN if it.kind in (Kind.SEIZURE_THRESHOLD, Kind.RAISES_BLOOD_PRESSURE) else INFO
            out.append(_finding(sev, code, f"{_cap(it.name)}: {it.effect}.", it.source))
    if diazepam_mg > BENZODIAZEPINE_THRESHOLD_MG_DIAZEPAM:
        out.append(
            _finding(
                WARN,
                "benzodiazepine_load",
                f"Benzodiazepines {diazepam_mg:.0f} mg "
                "diazepam-equivalent a day (above 8): may dampen ketamine's effect "
                "(shown for depression) and add to the premedication's sedation.",
                ANDRASHKO_2020,
            )
        )
    if mme >= MME_THRESHOLD_PER_DAY:
        out.append(
            _finding(
                WARN,
                "opioid_mme",
                f"Opioids {mme:.0f} MME/day (50 or more): higher "
                "risk of sedation and respiratory depression; monitor SpO2 and "
                "sedation.",
                DOWELL_2022,
            )
        )
    elif mme > 0:
        out.append(_finding(INFO, "opioid_mme", f"Opioids {mme:.0f} MME/day.", DOWELL_2022))
    if unknown:
        out.append(
            _finding(
                INFO,
                "medications_unchecked",
                f"Not in the interaction table, so not checked: {', '.join(unknown)}.",
                None,
            )
        )
    return out


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
