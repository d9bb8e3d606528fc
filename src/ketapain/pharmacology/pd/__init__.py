"""Pharmacodynamics: from concentrations to receptor occupancy, relief and side effects.

One module per layer:

* :mod:`.receptor`: NMDA occupancy from unbound ketamine and norketamine (Ebert 1997,
  Sałat 2015, Dayton 1983);
* :mod:`.acute`: acute analgesia and psychotomimetic effect (Olofsen 2022);
* :mod:`.sustained`: sustained relief of chronic pain (Dahan 2011);
* :mod:`.cardiovascular`: cardiac output, heart rate, blood pressure (Sigtermans 2009,
  Långsjö 2005);
* :mod:`.pain`: predicted NRS and the figures read from it (time to relief, duration).

:class:`PDModel` bundles one choice of every layer; its defaults are the published (and,
where the paper is silent, calibrated or assumed) values documented in each module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ketapain.pharmacology.pd.acute import AcuteEffectModel
from ketapain.pharmacology.pd.cardiovascular import CardiovascularModel
from ketapain.pharmacology.pd.emax import sigmoid_emax
from ketapain.pharmacology.pd.pain import (
    RELIEF_THRESHOLD,
    predicted_nrs,
    relief_duration_days,
    time_to_relief_h,
)
from ketapain.pharmacology.pd.receptor import ReceptorModel, nmda_occupancy
from ketapain.pharmacology.pd.sustained import SustainedReliefModel
from ketapain.sources import Source

__all__ = [
    "RELIEF_THRESHOLD",
    "AcuteEffectModel",
    "CardiovascularModel",
    "PDModel",
    "ReceptorModel",
    "SustainedReliefModel",
    "nmda_occupancy",
    "predicted_nrs",
    "relief_duration_days",
    "sigmoid_emax",
    "time_to_relief_h",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PDModel:
    """One choice of every pharmacodynamic layer."""

    receptor: ReceptorModel = field(default_factory=ReceptorModel)
    acute: AcuteEffectModel = field(default_factory=AcuteEffectModel)
    sustained: SustainedReliefModel = field(default_factory=SustainedReliefModel)
    cardiovascular: CardiovascularModel = field(default_factory=CardiovascularModel)

    def sources(self) -> tuple[Source, ...]:
        """Every work the layers cite, without repeats, in layer order."""
        seen: dict[Source, None] = {}
        for layer in (self.receptor, self.acute, self.sustained, self.cardiovascular):
            for source in layer.sources():
                seen.setdefault(source, None)
        return tuple(seen)
