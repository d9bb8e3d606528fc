"""Exact propagation of linear systems over piecewise-constant inputs, for N subjects.

Two exact methods, both free of step-size error:

* :class:`ModalPropagator` diagonalises A = V diag(lambda) V^-1 per subject. Each mode then
  evolves as z <- exp(lambda h) z + (exp(lambda h) - 1) / lambda f, so a step costs a few
  element-wise operations on an (m, N) array. Compartment models have real eigenvalues.
* :class:`MatrixPropagator` uses the matrix exponential of the augmented system
  [[A, I], [0, 0]] h (Van Loan), for subjects whose eigenvectors are ill-conditioned
  (two nearly equal rate constants) where the modal form would lose precision.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ketapain.pharmacology._grid import ROUTES, EventGrid
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.compartments import LinearSystem, Output

# Above this condition number of the eigenvector matrix the modal solution is replaced by
# the matrix exponential: it bounds the relative rounding error near 1e-8.
MAX_EIGENVECTOR_CONDITION = 1e8


def modal_decomposition(a: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Return eigenvalues, eigenvectors, their inverse, and each subject's condition number.

    Subjects whose eigen-decomposition is complex or singular get an infinite condition.
    """
    lam, v = np.linalg.eig(a)
    cond = np.full(a.shape[0], np.inf)
    if np.iscomplexobj(lam):
        imaginary = np.abs(lam.imag).max(axis=1) > 1e-9 * np.abs(lam.real).max(axis=1)
        lam, v = lam.real.copy(), v.real.copy()
    else:
        imaginary = np.zeros(a.shape[0], dtype=bool)
    det = np.abs(np.linalg.det(v))
    ok = (det > 1e-300) & ~imaginary
    v_inv = np.zeros_like(v)
    if np.any(ok):
        v_inv[ok] = np.linalg.inv(v[ok])
        cond[ok] = np.linalg.norm(v[ok], axis=(1, 2)) * np.linalg.norm(v_inv[ok], axis=(1, 2))
    return lam, v, v_inv, cond


class ModalPropagator:
    """Propagate modal coordinates of N subjects, one scaled copy per output.

    For each output o the modes that contribute to it are kept pre-multiplied by their
    read-out weight, z_o = w_o * (V^-1 x), so that reading the output is a plain sum over
    modes: the dynamics stay diagonal under this per-mode scaling.
    """

    def __init__(
        self,
        system: LinearSystem,
        grid: EventGrid,
        weight_kg: FloatArray,
        decomposition: tuple[FloatArray, FloatArray, FloatArray],
    ) -> None:
        lam, v, v_inv = decomposition
        lam_t = lam.T  # (m, N)
        unit: dict[tuple[int, int], FloatArray] = {}
        for r, route in enumerate(ROUTES):
            if route in system.inputs:
                image = np.einsum("nij,j->in", v_inv, system.inputs[route])
                unit[(r, 0)] = image
                unit[(r, 1)] = image * weight_kg
        self._outputs: list[_ScaledModes] = []
        self._index: dict[Output, int] = {}
        for o, w in system.outputs.items():
            read = np.einsum("ni,nij->jn", w, v)  # (m, N) weight of each mode
            keep = np.flatnonzero(np.any(read != 0.0, axis=1))
            if keep.size == 0:  # an output no input reaches (e.g. a sink read alone)
                keep = np.array([0])
            self._index[o] = len(self._outputs)
            self._outputs.append(
                _ScaledModes(
                    decay=[np.exp(lam_t[keep] * h) for h in grid.step_h],
                    gain=[_gain(lam_t[keep], h) for h in grid.step_h],
                    unit={key: read[keep] * image[keep] for key, image in unit.items()},
                    rates=grid.rates,
                )
            )

    def step(self, step_index: int, rate_index: int, zero_rate_index: int) -> None:
        """Advance one interval of constant input."""
        for modes in self._outputs:
            modes.step(step_index, rate_index, zero_rate_index)

    def jump(self, amounts: FloatArray) -> None:
        """Add instantaneous inputs (boluses)."""
        for modes in self._outputs:
            modes.z += modes.combine(amounts)

    def read(self, output: Output, out: FloatArray) -> None:
        """Write the output of every subject into ``out`` (shape (N,))."""
        z = self._outputs[self._index[output]].z
        # Row-by-row adds of the few modes beat a reduction over the short axis.
        if z.shape[0] == 1:
            np.copyto(out, z[0])
            return
        np.add(z[0], z[1], out=out)
        for row in z[2:]:
            np.add(out, row, out=out)


class _ScaledModes:
    """The modes of one output, pre-multiplied by their read-out weights."""

    def __init__(
        self,
        *,
        decay: list[FloatArray],
        gain: list[FloatArray],
        unit: dict[tuple[int, int], FloatArray],
        rates: FloatArray,
    ) -> None:
        self._decay = decay
        self._gain = gain
        self._unit = unit
        self._rates = rates
        self._forcing: dict[tuple[int, int], FloatArray] = {}
        self.z = np.zeros_like(decay[0]) if decay else np.zeros_like(next(iter(unit.values())))

    def combine(self, values: FloatArray) -> FloatArray:
        """Return the scaled modal image of inputs ``values`` [route, kind]."""
        total = np.zeros_like(self.z)
        for (r, kind), image in self._unit.items():
            if values[r, kind] != 0.0:
                total += image * values[r, kind]
        return total

    def step(self, step_index: int, rate_index: int, zero_rate_index: int) -> None:
        """Advance one interval of constant input."""
        np.multiply(self.z, self._decay[step_index], out=self.z)
        if rate_index != zero_rate_index:
            key = (step_index, rate_index)
            forcing = self._forcing.get(key)
            if forcing is None:
                forcing = self._gain[step_index] * self.combine(self._rates[rate_index])
                self._forcing[key] = forcing
            self.z += forcing


class MatrixPropagator:
    """Propagate the state x of N subjects (shape (N, n)) with matrix exponentials."""

    def __init__(self, system: LinearSystem, grid: EventGrid, weight_kg: FloatArray) -> None:
        a = system.a
        n_sub, n, _ = a.shape
        augmented = np.zeros((n_sub, 2 * n, 2 * n))
        augmented[:, :n, :n] = a
        augmented[:, :n, n:] = np.eye(n)
        self._phi = []
        self._gamma = []
        for h in grid.step_h:
            e = scipy.linalg.expm(augmented * h)
            self._phi.append(e[:, :n, :n].copy())
            self._gamma.append(e[:, :n, n:].copy())
        self._unit: dict[tuple[int, int], FloatArray] = {}
        for r, route in enumerate(ROUTES):
            if route in system.inputs:
                b = np.broadcast_to(system.inputs[route], (n_sub, n))
                self._unit[(r, 0)] = np.array(b)
                self._unit[(r, 1)] = b * weight_kg[:, None]
        self._rates = grid.rates
        self._forcing: dict[tuple[int, int], FloatArray] = {}
        self._read = system.outputs
        self.x = np.zeros((n_sub, n))

    def _input(self, values: FloatArray) -> FloatArray:
        total = np.zeros_like(self.x)
        for (r, kind), vector in self._unit.items():
            if values[r, kind] != 0.0:
                total += vector * values[r, kind]
        return total

    def step(self, step_index: int, rate_index: int, zero_rate_index: int) -> None:
        """Advance one interval of constant input."""
        self.x = np.einsum("nij,nj->ni", self._phi[step_index], self.x)
        if rate_index != zero_rate_index:
            key = (step_index, rate_index)
            forcing = self._forcing.get(key)
            if forcing is None:
                u = self._input(self._rates[rate_index])
                forcing = np.einsum("nij,nj->ni", self._gamma[step_index], u)
                self._forcing[key] = forcing
            self.x += forcing

    def jump(self, amounts: FloatArray) -> None:
        """Add instantaneous inputs (boluses)."""
        self.x += self._input(amounts)

    def read(self, output: Output, out: FloatArray) -> None:
        """Write the output of every subject into ``out`` (shape (N,))."""
        np.einsum("ni,ni->n", self._read[output], self.x, out=out)


def _gain(lam_t: FloatArray, h: float) -> FloatArray:
    """(exp(lambda h) - 1) / lambda, equal to h where lambda is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.expm1(lam_t * h) / lam_t
    return np.where(lam_t == 0.0, h, g)
