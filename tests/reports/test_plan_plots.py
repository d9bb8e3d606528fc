"""Tests of the plan figure (concentrations, pump steps, predicted pain)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from ketapain.protocols import get_protocol
from ketapain.protocols.patient import Patient
from ketapain.protocols.planning import Bag, CoursePlan, TargetRequest, build_plan
from ketapain.reports.plan_plots import plot_plan

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PATIENT = Patient.from_dict(
    {"age_y": 45, "sex": "male", "weight_kg": 70, "height_cm": 175, "diagnoses": ["crps_1"]}
)


def _plan(protocol: str, **kwargs) -> CoursePlan:
    return build_plan(
        PATIENT,
        get_protocol(protocol),
        start_date=date(2026, 12, 7),
        bag=Bag(drug_mg=250, volume_ml=250),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("protocol", "kwargs"),
    [
        ("single-day", {"predict_outcome": True, "follow_up_days": 7}),
        (
            "single-day",
            {
                "predict_outcome": True,
                "follow_up_days": 7,
                "target": TargetRequest(conc_ng_per_ml=150),
            },
        ),
        ("ten-weekdays", {"predict_outcome": False}),
        (
            "seed-outpatient",
            {"predict_outcome": False, "target": TargetRequest(conc_ng_per_ml=100)},
        ),
        ("oral-follow-on", {"predict_outcome": False}),
    ],
    ids=["predicted", "target", "no-prediction", "target-no-prediction", "oral-only"],
)
def test_plot_plan_writes_a_png(tmp_path: Path, protocol: str, kwargs: dict):
    """plot_plan writes a PNG, returns its path, and leaves no figure open."""
    plan = _plan(protocol, **kwargs)
    assert (plan.prediction is not None) == kwargs["predict_outcome"]
    before = plt.get_fignums()
    path = tmp_path / "plan.png"
    out = plot_plan(plan, path=path)
    assert out == path
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert path.stat().st_size > 10_000
    assert plt.get_fignums() == before


def test_plot_plan_accepts_a_string_path(tmp_path: Path):
    """A str path works as well as a Path."""
    plan = _plan("single-day", predict_outcome=False)
    out = plot_plan(plan, path=str(tmp_path / "s.png"))
    assert isinstance(out, Path)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_plan_into_a_missing_folder_raises_and_closes(tmp_path: Path):
    """Saving into a folder that does not exist raises and closes the figure."""
    plan = _plan("single-day", predict_outcome=False)
    before = plt.get_fignums()
    with pytest.raises(FileNotFoundError):
        plot_plan(plan, path=tmp_path / "no" / "such" / "dir" / "p.png")
    assert plt.get_fignums() == before
