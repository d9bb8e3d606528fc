"""Drug interactions with ketamine, and opioid load in morphine milligram equivalents.

Each medication the patient takes is looked up by name (case and spacing ignored; brand
and international names listed as synonyms). CYP interactions matter most for the oral
phase, since IV ketamine bypasses first-pass metabolism (Peltoniemi 2012: rifampicin
lowered oral S-ketamine AUC by 86% but IV by 14%).

>>> lookup("Oxycodone").kind
<Kind.OPIOID: 'opioid'>
>>> lookup("rifampin").name
'rifampicin'
>>> lookup("vitamin d") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ketapain.protocols.citations import (
    ANAND_2000,
    ANDRADE_2017,
    ASHTON_2002,
    DOWELL_2022,
    HAGELBERG_2010,
    PELTONIEMI_2011,
    PELTONIEMI_2012_GRAPEFRUIT,
    PELTONIEMI_2012_RIFAMPICIN,
    SPRAVATO_LABEL,
)
from ketapain.sources import KETALAR_LABEL, Source

__all__ = [
    "BENZODIAZEPINE_THRESHOLD_MG_DIAZEPAM",
    "MME",
    "MME_THRESHOLD_PER_DAY",
    "Interaction",
    "Kind",
    "lookup",
    "mme_per_day",
]


class Kind(StrEnum):
    """How a medication interacts with ketamine."""

    RAISES_ORAL_EXPOSURE = "raises_oral_exposure"
    LOWERS_EXPOSURE = "lowers_exposure"
    NO_CHANGE = "no_change"
    BENZODIAZEPINE = "benzodiazepine"
    OPIOID = "opioid"
    CNS_DEPRESSANT = "cns_depressant"
    ATTENUATES_EFFECTS = "attenuates_effects"
    SEIZURE_THRESHOLD = "seizure_threshold"
    RAISES_BLOOD_PRESSURE = "raises_blood_pressure"


@dataclass(frozen=True, slots=True, kw_only=True)
class Interaction:
    """A medication's interaction: kind, effect in words, a factor, and the source.

    ``factor`` is the diazepam-equivalent factor for a benzodiazepine (mg diazepam per
    mg), the MME factor for an opioid (per mg/day, or per ug/h for transdermal fentanyl),
    and the exposure ratio for a CYP interaction where one was measured.
    """

    name: str
    kind: Kind
    effect: str
    source: Source
    factor: float | None = None
    synonyms: tuple[str, ...] = ()


# More than this diazepam-equivalent a day predicted non-response to ketamine for
# depression (Andrashko 2020); its effect on analgesia is unknown.
BENZODIAZEPINE_THRESHOLD_MG_DIAZEPAM: Final = 8.0
# CDC 2022: reassess benefits and risks at 50 MME/day or more (Dowell 2022).
MME_THRESHOLD_PER_DAY: Final = 50.0

_ASHTON = ASHTON_2002
_CDC = DOWELL_2022
_SEDATION = "adds to ketamine's sedation and the premedication's; prolongs recovery"


def _benzo(name: str, factor: float, equivalent: str, *syn: str) -> Interaction:
    return Interaction(
        name=name,
        kind=Kind.BENZODIAZEPINE,
        effect=_SEDATION,
        source=_ASHTON.at(f"Table 1: {equivalent} = diazepam 10 mg"),
        factor=factor,
        synonyms=syn,
    )


def _opioid(name: str, factor: float, *syn: str) -> Interaction:
    return Interaction(
        name=name,
        kind=Kind.OPIOID,
        effect="adds to sedation and respiratory depression with ketamine and the premedication",
        source=_CDC.at(f"MME conversion factor {factor:g}"),
        factor=factor,
        synonyms=syn,
    )


def _kind(name: str, kind: Kind, effect: str, source: Source, *syn: str) -> Interaction:
    return Interaction(name=name, kind=kind, effect=effect, source=source, synonyms=syn)


_STIMULANT = "raises blood pressure and heart rate with ketamine"
_TABLE: Final = (
    Interaction(
        name="ticlopidine",
        kind=Kind.RAISES_ORAL_EXPOSURE,
        effect="CYP2B6 inhibitor: oral S-ketamine AUC 2.4-fold",
        source=PELTONIEMI_2011,
        factor=2.4,
    ),
    Interaction(
        name="clarithromycin",
        kind=Kind.RAISES_ORAL_EXPOSURE,
        effect="CYP3A inhibitor: oral S-ketamine Cmax 3.6-fold, AUC 2.6-fold",
        source=HAGELBERG_2010,
        factor=2.6,
    ),
    Interaction(
        name="grapefruit juice",
        kind=Kind.RAISES_ORAL_EXPOSURE,
        effect="oral S-ketamine AUC 3.0-fold, Cmax 2.1-fold",
        source=PELTONIEMI_2012_GRAPEFRUIT,
        factor=3.0,
        synonyms=("grapefruit",),
    ),
    _kind(
        "itraconazole",
        Kind.NO_CHANGE,
        "CYP3A inhibitor without effect on oral S-ketamine exposure",
        PELTONIEMI_2011,
    ),
    Interaction(
        name="rifampicin",
        kind=Kind.LOWERS_EXPOSURE,
        effect="CYP inducer: S-ketamine AUC down 86% orally, 14% intravenously",
        source=PELTONIEMI_2012_RIFAMPICIN,
        factor=0.14,
        synonyms=("rifampin",),
    ),
    *(
        _kind(
            n, Kind.LOWERS_EXPOSURE, "CYP3A4/CYP2B6 inducer: lowers ketamine exposure", ANDRADE_2017
        )
        for n in ("carbamazepine", "phenytoin", "phenobarbital")
    ),
    _benzo("diazepam", 1.0, "diazepam 10 mg"),
    _benzo("lorazepam", 10.0, "lorazepam 1 mg"),
    _benzo("alprazolam", 20.0, "alprazolam 0.5 mg"),
    _benzo("clonazepam", 20.0, "clonazepam 0.5 mg"),
    _benzo("temazepam", 0.5, "temazepam 20 mg"),
    _benzo("oxazepam", 0.5, "oxazepam 20 mg"),
    _benzo("chlordiazepoxide", 0.4, "chlordiazepoxide 25 mg"),
    _opioid("codeine", 0.15),
    _opioid("fentanyl", 2.4, "fentanyl patch", "transdermal fentanyl"),
    _opioid("hydrocodone", 1.0),
    _opioid("hydromorphone", 5.0),
    _opioid("methadone", 4.7),
    _opioid("morphine", 1.0),
    _opioid("oxycodone", 1.5),
    _opioid("oxymorphone", 3.0),
    _opioid("tapentadol", 0.4),
    _opioid("tramadol", 0.2),
    _kind(
        "buprenorphine",
        Kind.OPIOID,
        _SEDATION + "; no MME factor (partial agonist, Dowell 2022)",
        _CDC,
    ),
    *(
        _kind(n, Kind.CNS_DEPRESSANT, _SEDATION, SPRAVATO_LABEL)
        for n in ("gabapentin", "pregabalin", "zolpidem", "zopiclone", "alcohol")
    ),
    _kind(
        "lamotrigine",
        Kind.ATTENUATES_EFFECTS,
        "attenuates ketamine's neuropsychiatric effects (300 mg in volunteers)",
        ANAND_2000,
    ),
    *(
        _kind(
            n,
            Kind.SEIZURE_THRESHOLD,
            "lowers the seizure threshold with ketamine",
            KETALAR_LABEL.at("drug interactions: theophylline or aminophylline"),
        )
        for n in ("theophylline", "aminophylline")
    ),
    *(
        _kind(n, Kind.RAISES_BLOOD_PRESSURE, _STIMULANT, SPRAVATO_LABEL)
        for n in (
            "methylphenidate",
            "amphetamine",
            "dextroamphetamine",
            "lisdexamfetamine",
            "modafinil",
            "phenelzine",
            "tranylcypromine",
            "isocarboxazid",
            "selegiline",
        )
    ),
)
_BY_NAME: Final = {key: item for item in _TABLE for key in (item.name, *item.synonyms)}


def lookup(name: str) -> Interaction | None:
    """The interaction of a medication by name, or None when none is known."""
    return _BY_NAME.get(" ".join(name.lower().split()))


@dataclass(frozen=True, slots=True, kw_only=True)
class MME:
    """An opioid dose in morphine milligram equivalents a day, or why it has none."""

    mme_per_day: float | None
    factor: float | None
    note: str
    source: Source | None


def mme_per_day(
    name: str, *, dose_mg_per_day: float | None = None, dose_mcg_per_h: float | None = None
) -> MME | None:
    """Morphine milligram equivalents a day of one medication (None if not an opioid).

    CDC 2022 factors (Dowell 2022): per mg/day, and per ug/h for transdermal fentanyl.
    Buprenorphine is reported without a conversion, as the CDC advises.

    >>> mme_per_day("oxycodone", dose_mg_per_day=40).mme_per_day
    60.0
    >>> mme_per_day("fentanyl", dose_mcg_per_h=25).mme_per_day
    60.0
    >>> mme_per_day("buprenorphine", dose_mg_per_day=8).mme_per_day is None
    True
    """
    item = lookup(name)
    if item is None or item.kind is not Kind.OPIOID:
        return None
    if item.factor is None:
        return MME(
            mme_per_day=None,
            factor=None,
            note="no MME conversion: a partial agonist (CDC 2022); dose reported as given",
            source=item.source,
        )
    per_h = item.name == "fentanyl"
    dose = dose_mcg_per_h if per_h else dose_mg_per_day
    if dose is None:
        unit = "dose_mcg_per_h" if per_h else "dose_mg_per_day"
        return MME(
            mme_per_day=None, factor=item.factor, note=f"{unit} not given", source=item.source
        )
    unit = "ug/h" if per_h else "mg/day"
    return MME(
        mme_per_day=dose * item.factor,
        factor=item.factor,
        note=f"{dose:g} {unit} x {item.factor:g}",
        source=item.source,
    )
