"""Published population PK models as frozen values.

A :class:`PKModel` holds a model's typical values for a patient of
``reference_weight_kg``, how each parameter scales with weight, the covariate effects,
the inter-individual variability and the source of every number. It turns covariates
(and, for virtual populations, random effects) into :class:`PKParameters`.

Functions with the ``set_`` prefix return a changed copy; a model is never mutated.

Examples
--------
>>> from ketapain.pharmacology.models import get_model
>>> m = get_model("domino-cl79")
>>> p = m.parameters(Covariates.single(weight_kg=70))
>>> round(float(p.cl_l_per_h[0]), 1)
79.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

import numpy as np

from ketapain.errors import ExtrapolationWarning, InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.parameters import MetaboliteParameters, OralParameters, PKParameters
from ketapain.sources import Source

__all__ = [
    "ALLOMETRIC",
    "ETA_NAMES",
    "PER_KG",
    "Disposition",
    "Drug",
    "MetaboliteModel",
    "OralModel",
    "PKModel",
    "WeightScaling",
    "set_variability",
    "set_weight_scaling",
]

#: Names of the parameters that can carry inter-individual variability.
ETA_NAMES: Final = (
    "cl",
    "v1",
    "q2",
    "v2",
    "q3",
    "v3",
    "ke0",
    "ka",
    "bioavailability",
    "metabolite_cl",
    "metabolite_v1",
)


class Drug(StrEnum):
    """The substance a model describes."""

    RACEMIC = "racemic"
    S_KETAMINE = "s-ketamine"


@dataclass(frozen=True, slots=True, kw_only=True)
class Disposition:
    """Typical clearances (L/h) and volumes (L) of a patient of the reference weight."""

    cl_l_per_h: float
    v1_l: float
    q2_l_per_h: float | None = None
    v2_l: float | None = None
    q3_l_per_h: float | None = None
    v3_l: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightScaling:
    """Power-law weight scaling, parameter = typical x (WT / reference)^exponent.

    Exponent 1 on everything is per-kilogram scaling (as in models published per kg);
    0.75 on clearances and 1 on volumes is allometric scaling; 0 is no scaling.
    """

    reference_weight_kg: float = 70.0
    clearance_exponent: float = 0.75
    intercompartmental_exponent: float = 0.75
    volume_exponent: float = 1.0


ALLOMETRIC: Final = WeightScaling()
PER_KG: Final = WeightScaling(
    clearance_exponent=1.0, intercompartmental_exponent=1.0, volume_exponent=1.0
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OralModel:
    """Typical oral absorption; see :class:`OralParameters` for the structure."""

    bioavailability: float
    ka_per_h: float
    first_pass_metabolite_fraction: float = 0.0
    zero_order_h: float = 0.0
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MetaboliteModel:
    """Typical metabolite disposition at the reference weight (allometric by default)."""

    name: str = "norketamine"
    cl_l_per_h: float
    v1_l: float
    fraction_formed: float = 1.0
    molar_mass_ratio: float = 1.0
    q2_l_per_h: float | None = None
    v2_l: float | None = None
    clearance_exponent: float = 0.75
    volume_exponent: float = 1.0
    female_clearance_factor: float = 1.0
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PKModel:
    """A population pharmacokinetic model of ketamine or S-ketamine.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"domino-cl79"``.
    drug : Drug
        Racemic ketamine or S-ketamine.
    population : str
        The population the model was estimated in, in words.
    source : Source
        The primary publication.
    disposition : Disposition
        Typical values at ``scaling.reference_weight_kg``.
    scaling : WeightScaling
        How each parameter scales with weight.
    ke0_per_h : float | None
        Plasma-effect-site equilibration rate constant, 1/h.
    variability_cv : tuple of (name, CV)
        Log-normal inter-individual variability (CV as a fraction) by parameter name
        (see :data:`ETA_NAMES`).
    s_fraction : float
        Share of S-ketamine in total ketamine concentration (1 for S-ketamine models).
    female_clearance_factor : float
        Multiplier on clearance for women.
    weight_range_kg, age_range_y : tuple of float
        Covariate range of the studied population; outside it the model extrapolates
        and :class:`ExtrapolationWarning` is issued.
    notes : tuple of (str, Source | None)
        Every number with its source, as lines a user can read.
    """

    name: str
    drug: Drug
    population: str
    source: Source
    disposition: Disposition
    scaling: WeightScaling = ALLOMETRIC
    ke0_per_h: float | None = None
    oral: OralModel | None = None
    metabolite: MetaboliteModel | None = None
    variability_cv: tuple[tuple[str, float], ...] = ()
    s_fraction: float = 1.0
    female_clearance_factor: float = 1.0
    weight_range_kg: tuple[float, float] = (40.0, 150.0)
    age_range_y: tuple[float, float] = (18.0, 100.0)
    notes: tuple[tuple[str, Source | None], ...] = field(default=())

    def __post_init__(self) -> None:
        for eta_name, cv in self.variability_cv:
            if eta_name not in ETA_NAMES:
                raise InvalidValueError("variability", f"one of {', '.join(ETA_NAMES)}", eta_name)
            if not (np.isfinite(cv) and 0 <= cv <= 3):
                raise InvalidValueError(f"variability.{eta_name}", "a CV between 0 and 3", cv)

    @property
    def variability(self) -> dict[str, float]:
        """Inter-individual variability as a mapping of parameter name to CV."""
        return dict(self.variability_cv)

    @property
    def has_metabolite(self) -> bool:
        """Whether the model predicts a metabolite (norketamine) concentration."""
        return self.metabolite is not None

    @property
    def n_compartments(self) -> int:
        """Number of parent disposition compartments."""
        d = self.disposition
        return 1 + (d.q2_l_per_h is not None) + (d.q3_l_per_h is not None)

    def sources(self) -> tuple[Source, ...]:
        """Every work the model cites, primary source first, without duplicates."""
        seen: dict[str, Source] = {self.source.cite(): self.source}
        extra = [s for _, s in self.notes if s is not None]
        for block in (self.oral, self.metabolite):
            if block is not None:
                extra.extend(block.sources)
        for s in extra:
            seen.setdefault(s.cite(), s)
        return tuple(seen.values())

    def check_covariates(self, covariates: Covariates) -> list[str]:
        """Return a message for each covariate outside the studied population."""
        messages = []
        low, high = self.weight_range_kg
        w = covariates.weight_kg
        if np.any((w < low) | (w > high)):
            messages.append(
                f"{self.name}: weight outside the studied range {low:g}-{high:g} kg "
                f"(given {w.min():g}-{w.max():g} kg); the model extrapolates"
            )
        low, high = self.age_range_y
        a = covariates.age_y
        if np.any((a < low) | (a > high)):
            messages.append(
                f"{self.name}: age outside the studied range {low:g}-{high:g} y "
                f"(given {a.min():g}-{a.max():g} y); the model extrapolates"
            )
        return messages

    def parameters(
        self,
        covariates: Covariates,
        *,
        etas: dict[str, FloatArray] | None = None,
        warn: bool = True,
    ) -> PKParameters:
        """Return individual parameters for the given covariates.

        Parameters
        ----------
        covariates : Covariates
            Weight, sex and age of N subjects.
        etas : dict of str to ndarray, optional
            Random effects by parameter name (see :data:`ETA_NAMES`), each of shape
            (N,). A parameter becomes typical x exp(eta); bioavailability uses the logit
            scale so that it stays within 0 to 1. Missing names mean eta = 0.
        warn : bool
            Issue :class:`ExtrapolationWarning` for covariates outside the studied range.
        """
        if warn:
            for message in self.check_covariates(covariates):
                warnings.warn(message, ExtrapolationWarning, stacklevel=2)
        etas = etas or {}
        n = covariates.n_subjects
        rel = covariates.weight_kg / self.scaling.reference_weight_kg
        sex_cl = np.where(covariates.female, self.female_clearance_factor, 1.0)

        def ind(name: str, typical: float | None, exponent: float) -> FloatArray | None:
            if typical is None:
                return None
            value = typical * rel**exponent
            eta = etas.get(name)
            return value * np.exp(eta) if eta is not None else value * np.ones(n)

        d, s = self.disposition, self.scaling
        cl = ind("cl", d.cl_l_per_h, s.clearance_exponent)
        v1 = ind("v1", d.v1_l, s.volume_exponent)
        if cl is None or v1 is None:  # both typical values always exist
            raise InvalidValueError("disposition", "CL and V1 given", self.name)
        ke0 = ind("ke0", self.ke0_per_h, 0.0)
        return PKParameters(
            weight_kg=covariates.weight_kg.astype(np.float64),
            cl_l_per_h=cl * sex_cl,
            v1_l=v1,
            q2_l_per_h=ind("q2", d.q2_l_per_h, s.intercompartmental_exponent),
            v2_l=ind("v2", d.v2_l, s.volume_exponent),
            q3_l_per_h=ind("q3", d.q3_l_per_h, s.intercompartmental_exponent),
            v3_l=ind("v3", d.v3_l, s.volume_exponent),
            ke0_per_h=ke0,
            oral=self._oral_parameters(n, etas),
            metabolite=self._metabolite_parameters(covariates, rel, etas),
        )

    def _oral_parameters(self, n: int, etas: dict[str, FloatArray]) -> OralParameters | None:
        if self.oral is None:
            return None
        o = self.oral
        ka = o.ka_per_h * np.exp(etas.get("ka", np.zeros(n)))
        f = np.full(n, o.bioavailability)
        if "bioavailability" in etas and 0 < o.bioavailability < 1:
            logit = np.log(o.bioavailability / (1 - o.bioavailability)) + etas["bioavailability"]
            f = 1.0 / (1.0 + np.exp(-logit))
        # Presystemic metabolite formation takes a share of what is not absorbed intact.
        fp = np.full(n, o.first_pass_metabolite_fraction)
        if o.bioavailability < 1:
            fp = np.minimum(fp * (1 - f) / (1 - o.bioavailability), 1 - f)
        return OralParameters(
            ka_per_h=ka,
            bioavailability=f,
            first_pass_metabolite_fraction=fp,
            zero_order_h=o.zero_order_h,
        )

    def _metabolite_parameters(
        self, covariates: Covariates, rel: FloatArray, etas: dict[str, FloatArray]
    ) -> MetaboliteParameters | None:
        if self.metabolite is None:
            return None
        m = self.metabolite
        n = covariates.n_subjects
        sex_cl = np.where(covariates.female, m.female_clearance_factor, 1.0)
        eta_cl = np.exp(etas.get("metabolite_cl", np.zeros(n)))
        eta_v = np.exp(etas.get("metabolite_v1", np.zeros(n)))
        q2 = v2 = None
        if m.q2_l_per_h is not None and m.v2_l is not None:
            q2 = m.q2_l_per_h * rel**m.clearance_exponent
            v2 = m.v2_l * rel**m.volume_exponent
        return MetaboliteParameters(
            cl_l_per_h=m.cl_l_per_h * rel**m.clearance_exponent * sex_cl * eta_cl,
            v1_l=m.v1_l * rel**m.volume_exponent * eta_v,
            fraction_formed=np.full(n, m.fraction_formed),
            molar_mass_ratio=m.molar_mass_ratio,
            q2_l_per_h=q2,
            v2_l=v2,
        )


def set_variability(model: PKModel, cv: dict[str, float]) -> PKModel:
    """Return the model with its inter-individual variability replaced by ``cv``."""
    return replace(model, variability_cv=tuple(sorted(cv.items())))


def set_weight_scaling(model: PKModel, scaling: WeightScaling) -> PKModel:
    """Return the model with another weight-scaling rule."""
    return replace(model, scaling=scaling)
