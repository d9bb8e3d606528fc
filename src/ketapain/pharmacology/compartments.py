"""Linear compartment systems built from individual parameters.

The state of each subject is a vector x (amounts in mg, except the effect site, held
as a concentration in mg/L) that obeys

    dx/dt = A x + b_iv u_iv(t) + b_oral u_oral(t)

with piecewise-constant inputs u (mg/h) and instantaneous jumps for boluses (mg).
Outputs are linear read-outs y = w . x. The layout is, in order and when present:
central, peripheral 2, peripheral 3, gut depot, effect site, metabolite central,
metabolite peripheral, and a sink that counts parent eliminated (for mass balance).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.parameters import PKParameters

__all__ = ["InputRoute", "LinearSystem", "Output", "build_system"]


class Output(StrEnum):
    """Quantities a simulation can report (internal units: mg/L or mg)."""

    KETAMINE_PLASMA = "ketamine_plasma"
    KETAMINE_EFFECT_SITE = "ketamine_effect_site"
    KETAMINE_SLOW_EFFECT_SITE = "ketamine_slow_effect_site"
    METABOLITE_PLASMA = "metabolite_plasma"
    AMOUNT_IN_BODY = "amount_in_body"
    AMOUNT_ELIMINATED = "amount_eliminated"


class InputRoute(StrEnum):
    """Where an input enters the system."""

    IV = "iv"
    ORAL = "oral"


@dataclass(frozen=True, slots=True)
class LinearSystem:
    """dx/dt = A x + sum_r b_r u_r for N subjects.

    ``a`` has shape (N, n, n); each input vector ``inputs[r]`` has shape (n,); each
    read-out ``outputs[o]`` has shape (N, n).
    """

    a: FloatArray
    inputs: dict[InputRoute, FloatArray]
    outputs: dict[Output, FloatArray]
    state_names: tuple[str, ...]

    def take(self, index: np.ndarray) -> LinearSystem:
        """Return the system of the subjects selected by ``index``."""
        return LinearSystem(
            a=self.a[index],
            inputs=self.inputs,
            outputs={o: w[index] for o, w in self.outputs.items()},
            state_names=self.state_names,
        )


def build_system(
    params: PKParameters, *, outputs: tuple[Output, ...], with_oral: bool
) -> LinearSystem:
    """Build the linear system that yields ``outputs`` for the given subjects."""
    if Output.KETAMINE_EFFECT_SITE in outputs and params.ke0_per_h is None:
        raise InvalidValueError(
            "outputs",
            "without the effect site for a model without ke0",
            Output.KETAMINE_EFFECT_SITE.value,
        )
    if Output.KETAMINE_SLOW_EFFECT_SITE in outputs and params.slow_ke0_per_h is None:
        raise InvalidValueError(
            "outputs",
            "without the slow effect site for parameters without slow_ke0_per_h",
            Output.KETAMINE_SLOW_EFFECT_SITE.value,
        )
    if with_oral and params.oral is None:
        raise InvalidValueError(
            "route", "iv_bolus or iv_infusion: the model has no oral absorption", "oral"
        )
    want_met = params.metabolite is not None and Output.METABOLITE_PLASMA in outputs
    if Output.METABOLITE_PLASMA in outputs and params.metabolite is None:
        raise InvalidValueError(
            "outputs",
            "without a metabolite for a model without one",
            Output.METABOLITE_PLASMA.value,
        )

    names = ["central"]
    if params.q2_l_per_h is not None:
        names.append("peripheral2")
    if params.q3_l_per_h is not None:
        names.append("peripheral3")
    n_parent = len(names)
    if with_oral:
        names.append("depot")
    if Output.KETAMINE_EFFECT_SITE in outputs:
        names.append("effect_site")
    if Output.KETAMINE_SLOW_EFFECT_SITE in outputs:
        names.append("slow_effect_site")
    met = params.metabolite if want_met else None
    if met is not None:
        names.append("metabolite_central")
        if met.q2_l_per_h is not None:
            names.append("metabolite_peripheral")
    if Output.AMOUNT_ELIMINATED in outputs:
        names.append("eliminated")
    idx = {name: i for i, name in enumerate(names)}
    n_sub, n = params.n_subjects, len(names)
    a = np.zeros((n_sub, n, n))
    c = idx["central"]
    v1 = params.v1_l
    k10 = params.cl_l_per_h / v1
    a[:, c, c] = -k10
    for q, v, name in (
        (params.q2_l_per_h, params.v2_l, "peripheral2"),
        (params.q3_l_per_h, params.v3_l, "peripheral3"),
    ):
        if q is not None and v is not None:
            p = idx[name]
            a[:, c, c] -= q / v1
            a[:, p, c] = q / v1
            a[:, c, p] = q / v
            a[:, p, p] = -q / v
    if with_oral and params.oral is not None:
        d = idx["depot"]
        ka = params.oral.ka_per_h
        a[:, d, d] = -ka
        a[:, c, d] = ka * params.oral.bioavailability
        if met is not None:
            a[:, idx["metabolite_central"], d] = (
                ka * params.oral.first_pass_metabolite_fraction * met.molar_mass_ratio
            )
    if "effect_site" in idx and params.ke0_per_h is not None:
        e = idx["effect_site"]
        a[:, e, c] = params.ke0_per_h / v1
        a[:, e, e] = -params.ke0_per_h
    if "slow_effect_site" in idx and params.slow_ke0_per_h is not None:
        e = idx["slow_effect_site"]
        a[:, e, c] = params.slow_ke0_per_h / v1
        a[:, e, e] = -params.slow_ke0_per_h
    if met is not None:
        m = idx["metabolite_central"]
        a[:, m, c] += k10 * met.fraction_formed * met.molar_mass_ratio
        a[:, m, m] = -met.cl_l_per_h / met.v1_l
        if met.q2_l_per_h is not None and met.v2_l is not None:
            mp = idx["metabolite_peripheral"]
            a[:, m, m] -= met.q2_l_per_h / met.v1_l
            a[:, mp, m] = met.q2_l_per_h / met.v1_l
            a[:, m, mp] = met.q2_l_per_h / met.v2_l
            a[:, mp, mp] = -met.q2_l_per_h / met.v2_l
    if "eliminated" in idx:
        a[:, idx["eliminated"], c] = k10

    inputs = {InputRoute.IV: _unit(n, c)}
    if with_oral:
        inputs[InputRoute.ORAL] = _unit(n, idx["depot"])
    reads: dict[Output, FloatArray] = {}
    for out in outputs:
        w = np.zeros((n_sub, n))
        if out is Output.KETAMINE_PLASMA:
            w[:, c] = 1.0 / v1
        elif out is Output.KETAMINE_EFFECT_SITE:
            w[:, idx["effect_site"]] = 1.0
        elif out is Output.KETAMINE_SLOW_EFFECT_SITE:
            w[:, idx["slow_effect_site"]] = 1.0
        elif out is Output.METABOLITE_PLASMA and met is not None:
            w[:, idx["metabolite_central"]] = 1.0 / met.v1_l
        elif out is Output.AMOUNT_IN_BODY:
            w[:, :n_parent] = 1.0
        elif out is Output.AMOUNT_ELIMINATED:
            w[:, idx["eliminated"]] = 1.0
        reads[out] = w
    return LinearSystem(a=a, inputs=inputs, outputs=reads, state_names=tuple(names))


def _unit(n: int, i: int) -> FloatArray:
    e = np.zeros(n)
    e[i] = 1.0
    return e
