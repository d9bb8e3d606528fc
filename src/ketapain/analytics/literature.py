"""Published figures to set beside the clinic's own, each with its source and its caveat.

Each :class:`LiteratureFigure` names the clinic measure it compares with (a key of the
measures :func:`ketapain.analytics.report.analyse` computes). The figures come from the
clinic pages the product started from (seeds 000 and 002) and the studies of the clinical
reference; they differ in population, regimen and definitions, which each ``note`` says,
so a difference is a question to ask, not a verdict.

>>> [f.source.short() for f in LITERATURE if f.measure == "responders_end_30"]
['NY Ketamine Infusions', 'Correll 2004']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ketapain.sources import (
    NOPPERS_2011_LIVER,
    SCHWARTZMAN_2009,
    SIGTERMANS_2009_CRPS,
    Source,
)

__all__ = [
    "CORRELL_2004",
    "LITERATURE",
    "MANGNUS_2022",
    "PATIL_2012",
    "SEED_000",
    "SEED_002",
    "LiteratureFigure",
]

SEED_000: Final = Source(
    authors="NY Ketamine Infusions",
    year=None,
    journal="Clinic page 'The science of ketamine for pain' (seed 000)",
    locator="about 20% of patients will not experience relief; 80% do",
)
SEED_002: Final = Source(
    authors="Calliope Health",
    year=None,
    journal="Clinic page 'Ketamine infusion therapy for chronic pain' (seed 002)",
    locator="52% reduce opioids by at least 20%; 35% report significant side effects; "
    "about 10% temporary liver-enzyme elevations",
)
CORRELL_2004: Final = Source(
    authors="Correll GE, Maleki J, Gracely EJ, Muir JJ, Harbut RE",
    year=2004,
    journal="Pain Med 5(3):263-275",
    title="Subanesthetic ketamine infusion therapy: a retrospective analysis of a novel "
    "therapeutic approach to complex regional pain syndrome",
    locator="n = 33 CRPS: 76% complete relief after the first course; 1 of 33 stopped for "
    "elevated liver enzymes, which normalised",
)
PATIL_2012: Final = Source(
    authors="Patil S, Anitescu M",
    year=2012,
    journal="Pain Med 13(2):263-269",
    title="Efficacy of outpatient ketamine infusions in refractory chronic pain syndromes: "
    "a 5-year retrospective analysis",
    locator="49 patients, 369 infusions: VAS fell 5.9 overall (7.2 in CRPS); 23-51% had "
    "relief beyond 3 weeks",
)
MANGNUS_2022: Final = Source(
    authors="Mangnus TJP, Dirckx M, Bharwani KD, et al.",
    year=2022,
    journal="Pain Pract 22(1)",
    title="Effect of intravenous low-dose S-ketamine on pain in patients with complex "
    "regional pain syndrome: a retrospective cohort study",
    locator="n = 48 CRPS, 7-day S-ketamine up to 14 mg/h: responders (>= 2-point NRS fall) "
    "62% at the end of the infusion, 48% at about 4 weeks",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteratureFigure:
    """One published figure: what it measures, its value (a share, or NRS), and caveats.

    ``low``/``high`` give a published range; ``value`` is None where the source reports
    no single number (the row still shows the regimen and what was found).
    """

    measure: str
    label: str
    unit: str
    value: float | None
    source: Source
    note: str
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "label": self.label,
            "unit": self.unit,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "source": self.source.cite(),
            "source_short": self.source.short(),
            "note": self.note,
        }


def _share(measure: str, label: str, value: float | None, source: Source, note: str,
           **range_: float) -> LiteratureFigure:  # fmt: skip
    return LiteratureFigure(
        measure=measure, label=label, unit="share", value=value, source=source, note=note,
        **range_,
    )  # fmt: skip


LITERATURE: Final[tuple[LiteratureFigure, ...]] = (
    _share("responders_end_30", "patients who respond", 0.80, SEED_000,
           "the clinic's own claim; no definition of response given"),
    _share("responders_end_30", "complete relief after the first course", 0.76, CORRELL_2004,
           "retrospective, CRPS, 2-4 day continuous infusions; 'complete relief' is stricter "
           "than a 30% fall"),
    _share("responders_end_2pt", "responders at the end of the infusion", 0.62, MANGNUS_2022,
           "retrospective, CRPS, 7-day inpatient S-ketamine; >= 2-point NRS fall"),
    _share("responders_week_4_2pt", "responders at about 4 weeks", 0.48, MANGNUS_2022,
           "retrospective, CRPS; >= 2-point NRS fall"),
    _share("relief_beyond_3_weeks", "relief lasting beyond 3 weeks", None, PATIL_2012,
           "retrospective, mixed refractory pain (37% CRPS), outpatient series",
           low=0.23, high=0.51),
    LiteratureFigure(measure="mean_drop_end", label="mean fall in pain (0-10)", unit="points",
                     value=5.9, source=PATIL_2012,
                     note="VAS fall over the outpatient series; 7.2 in CRPS"),
    LiteratureFigure(measure="mean_nrs_week_1", label="mean NRS at the end of week 1",
                     unit="NRS", value=2.68, source=SIGTERMANS_2009_CRPS,
                     note="RCT, CRPS-1, 100-h S-ketamine; placebo 5.45; effect lost by week "
                     "12 (P = 0.07)"),
    LiteratureFigure(measure="mean_drop_end", label="significant fall in pain vs placebo",
                     unit="points", value=None, source=SCHWARTZMAN_2009,
                     note="RCT, CRPS, 4 h/day for 10 days up to 0.35 mg/kg/h; many pain "
                     "parameters fell vs placebo over 3 months; no single figure reported"),
    _share("opioid_reduced_20", "reduce opioids by at least 20%", 0.52, SEED_002,
           "the clinic's page, citing a systematic review; definitions not given"),
    _share("significant_side_effects", "significant side effects", 0.35, SEED_002,
           "the clinic's page; 'significant' not defined"),
    _share("any_side_effects", "psychomimetic side effects", 0.76, SIGTERMANS_2009_CRPS,
           "RCT, 100-h continuous S-ketamine (placebo 18%); a longer, higher exposure"),
    _share("lft_elevated", "temporary liver-enzyme elevation", 0.10, SEED_002,
           "repeated infusions; levels normal within 3 months"),
    _share("lft_elevated", "stopped for elevated liver enzymes", 1 / 33, CORRELL_2004,
           "1 of 33; normalised"),
    _share("lft_over_3x_uln", "liver enzymes at least 3 x ULN", 3 / 6, NOPPERS_2011_LIVER,
           "3 of 6 CRPS patients after two 100-h S-ketamine infusions 16 days apart"),
)  # fmt: skip
