"""The scores a nurse charts: range, items and pass mark of each instrument, with sources.

>>> INSTRUMENTS["aldrete"].total({"activity": 2, "respiration": 2, "circulation": 2,
...                               "consciousness": 1, "spo2": 2})
9.0
>>> INSTRUMENTS["aldrete"].passes(9)
True
>>> round(INSTRUMENTS["peg"].total({"pain": 7, "enjoyment": 6, "activity": 6}), 2)
6.33
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import ALDRETE_1995
from ketapain.sources import CHAN_2022, CHERNIK_1990, FARRAR_2001, GUY_1976, RODRIGUES_2021, Source

__all__ = [
    "CHUNG_1995",
    "INSTRUMENTS",
    "KREBS_2009",
    "KROENKE_2001",
    "PATIENT_REPORTED",
    "Instrument",
]

SESSLER_2002: Final = Source(
    authors="Sessler CN, Gosnell MS, Grap MJ, et al.",
    year=2002,
    journal="Am J Respir Crit Care Med 166(10):1338-1344",
    title="The Richmond Agitation-Sedation Scale: validity and reliability in adult "
    "intensive care unit patients",
    locator="+4 combative to -5 unarousable",
)
CHUNG_1995: Final = Source(
    authors="Chung F, Chan VW, Ong D",
    year=1995,
    journal="J Clin Anesth 7(6):500-506",
    title="A post-anesthetic discharge scoring system for home readiness after ambulatory surgery",
    locator="modified PADSS: 5 items 0-2; home-ready at 9 or more",
)
BOOGAERTS_2000: Final = Source(
    authors="Boogaerts JG, Vanacker E, Seidel L, et al.",
    year=2000,
    journal="Acta Anaesthesiol Scand 44(4):470-474",
    title="Assessment of postoperative nausea using a visual analogue scale",
    locator="nausea rated 0 (none) to 10 (worst)",
)
KREBS_2009: Final = Source(
    authors="Krebs EE, Lorenz KA, Bair MJ, et al.",
    year=2009,
    journal="J Gen Intern Med 24(6):733-738",
    title="Development and initial validation of the PEG, a three-item scale assessing pain "
    "intensity and interference",
    doi="10.1007/s11606-009-0981-1",
    locator="average pain, interference with enjoyment of life and with general activity "
    "in the past week, each 0-10; the score is their mean",
)

KROENKE_2001: Final = Source(
    authors="Kroenke K, Spitzer RL, Williams JB",
    year=2001,
    journal="J Gen Intern Med 16(9):606-613",
    title="The PHQ-9: validity of a brief depression severity measure",
    doi="10.1046/j.1525-1497.2001.016009606.x",
    locator="9 items 0-3, total 0-27; item 9: thoughts that you would be better off dead "
    "or of hurting yourself",
)
SPITZER_2006: Final = Source(
    authors="Spitzer RL, Kroenke K, Williams JB, Lowe B",
    year=2006,
    journal="Arch Intern Med 166(10):1092-1097",
    title="A brief measure for assessing generalized anxiety disorder: the GAD-7",
    doi="10.1001/archinte.166.10.1092",
    locator="7 items 0-3, total 0-21",
)
CLEELAND_1994: Final = Source(
    authors="Cleeland CS, Ryan KM",
    year=1994,
    journal="Ann Acad Med Singapore 23(2):129-138",
    title="Pain assessment: global use of the Brief Pain Inventory",
    locator="short form: severity = mean of worst, least, average and now (0-10); "
    "interference = mean of 7 items (0-10)",
)
HERDMAN_2011: Final = Source(
    authors="Herdman M, Gudex C, Lloyd A, et al.",
    year=2011,
    journal="Qual Life Res 20(10):1727-1736",
    title="Development and preliminary testing of the new five-level version of EQ-5D (EQ-5D-5L)",
    doi="10.1007/s11136-011-9903-x",
    locator="EQ VAS: own health today, 0 (worst imaginable) to 100 (best imaginable)",
)
SULLIVAN_1990: Final = Source(
    authors="Sullivan MJL, Edgley K, Dehoux E",
    year=1990,
    journal="Can J Rehabil 4(2):99-105",
    title="A survey of multiple sclerosis: I. Perceived cognitive problems and "
    "compensatory strategy use",
    locator="Perceived Deficits Questionnaire; 5-item form, each 0 (never) to 4 (almost "
    "always), total 0-20",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """A score: its range, its items (each ``item_max`` at most) and the pass mark.

    An itemised score is the sum of its items, or their mean when ``mean_of_items``
    (the PEG): a mean may be a fraction, any other score is a whole number.
    """

    name: str
    title: str
    low: int
    high: int
    source: Source
    items: tuple[str, ...] = ()
    item_max: int = 0
    pass_at_least: int | None = None
    mean_of_items: bool = False
    patient_reported: bool = False

    def total(self, items: Mapping[str, int]) -> float:
        """The total (or mean) of an itemised score; every item must be given once, in range."""
        unknown = sorted(set(items) - set(self.items))
        if unknown:
            raise InvalidValueError(f"items.{unknown[0]}", f"one of {', '.join(self.items)}", "")
        for key in self.items:
            v = items.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= self.item_max:
                raise InvalidValueError(f"items.{key}", f"a whole number 0 to {self.item_max}", v)
        total = sum(items[k] for k in self.items)
        return total / len(self.items) if self.mean_of_items else float(total)

    def check(self, value: float) -> None:
        """Raise unless ``value`` is within the instrument's range (and whole, unless a mean)."""
        whole = self.mean_of_items or float(value).is_integer()
        if not (whole and self.low <= value <= self.high):
            if self.mean_of_items:
                raise InvalidValueError(
                    f"{self.name} value", f"a mean from {self.low} to {self.high}", value
                )
            raise InvalidValueError(
                f"{self.name} value", f"a whole number from {self.low} to {self.high}", value
            )

    def passes(self, value: float) -> bool | None:
        """True at or above the pass mark (None for a scale without one)."""
        return None if self.pass_at_least is None else value >= self.pass_at_least


INSTRUMENTS: Final = {
    i.name: i
    for i in (
        Instrument(
            name="pain_nrs",
            title="Pain, numeric rating scale",
            low=0,
            high=10,
            source=FARRAR_2001,
            patient_reported=True,
        ),
        Instrument(
            name="peg",
            title="PEG: pain, enjoyment of life, general activity (past week)",
            low=0,
            high=10,
            source=KREBS_2009,
            items=("pain", "enjoyment", "activity"),
            item_max=10,
            mean_of_items=True,
            patient_reported=True,
        ),
        Instrument(
            name="moaas",
            title="Modified Observer's Assessment of Alertness/Sedation",
            low=0,
            high=5,
            source=CHERNIK_1990,
        ),
        Instrument(
            name="rass",
            title="Richmond Agitation-Sedation Scale",
            low=-5,
            high=4,
            source=SESSLER_2002,
        ),
        Instrument(
            name="cadss6",
            title="Clinician-Administered Dissociative States Scale, 6 items",
            low=0,
            high=24,
            source=RODRIGUES_2021,
            items=("item1", "item2", "item6", "item7", "item15", "item22"),
            item_max=4,
        ),
        Instrument(
            name="nausea_nrs",
            title="Nausea, numeric rating scale",
            low=0,
            high=10,
            source=BOOGAERTS_2000,
        ),
        Instrument(
            name="aldrete",
            title="Modified Aldrete score",
            low=0,
            high=10,
            source=ALDRETE_1995.at("5 items 0-2; discharge from recovery at 9 or more"),
            items=("activity", "respiration", "circulation", "consciousness", "spo2"),
            item_max=2,
            pass_at_least=9,
        ),
        Instrument(
            name="padss",
            title="Post-Anesthetic Discharge Scoring System (modified)",
            low=0,
            high=10,
            source=CHUNG_1995,
            items=("vital_signs", "activity", "nausea_vomiting", "pain", "bleeding"),
            item_max=2,
            pass_at_least=9,
        ),
        Instrument(
            name="phq9",
            title="PHQ-9 depression (past two weeks)",
            low=0,
            high=27,
            source=KROENKE_2001,
            items=tuple(f"item{i}" for i in range(1, 10)),
            item_max=3,
            patient_reported=True,
        ),
        Instrument(
            name="gad7",
            title="GAD-7 anxiety (past two weeks)",
            low=0,
            high=21,
            source=SPITZER_2006,
            items=tuple(f"item{i}" for i in range(1, 8)),
            item_max=3,
            patient_reported=True,
        ),
        Instrument(
            name="pgic",
            title="Patient Global Impression of Change (1 very much improved - 7 very much worse)",
            low=1,
            high=7,
            source=GUY_1976,
            patient_reported=True,
        ),
        Instrument(
            name="bpi_severity",
            title="Brief Pain Inventory short form: pain severity (past 24 h)",
            low=0,
            high=10,
            source=CLEELAND_1994,
            items=("worst", "least", "average", "now"),
            item_max=10,
            mean_of_items=True,
            patient_reported=True,
        ),
        Instrument(
            name="bpi_interference",
            title="Brief Pain Inventory short form: pain interference (past 24 h)",
            low=0,
            high=10,
            source=CLEELAND_1994,
            items=(
                "general_activity",
                "mood",
                "walking",
                "normal_work",
                "relations",
                "sleep",
                "enjoyment",
            ),
            item_max=10,
            mean_of_items=True,
            patient_reported=True,
        ),
        Instrument(
            name="eq_vas",
            title="EQ VAS: health today (quality of life), 0 worst - 100 best",
            low=0,
            high=100,
            source=HERDMAN_2011,
            patient_reported=True,
        ),
        Instrument(
            name="pdq5",
            title="Perceived Deficits Questionnaire, 5 items (cognitive complaints)",
            low=0,
            high=20,
            source=SULLIVAN_1990,
            items=("organising", "concentrating", "forgetting_date", "remembering", "blank_mind"),
            item_max=4,
            patient_reported=True,
        ),
        Instrument(
            name="urinary_screen",
            title="Urinary symptom screen (frequency, urgency, dysuria, haematuria, "
            "suprapubic pain; 1 = yes)",
            low=0,
            high=5,
            source=CHAN_2022.at(
                "frequency, urgency, dysuria, haematuria, suprapubic pain; stop if positive "
                "(clinical reference 3.4, derived)"
            ),
            items=("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain"),
            item_max=1,
        ),
    )
}
# The scores a patient may report (diary, questionnaires); NRS and PEG are also charted.
PATIENT_REPORTED: Final = tuple(n for n, i in INSTRUMENTS.items() if i.patient_reported)
