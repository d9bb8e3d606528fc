"""Tests of the printable plan (chart copy) and the patient handout rendered from a plan."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ketapain.protocols import get_protocol
from ketapain.protocols.findings import Override
from ketapain.protocols.patient import Patient
from ketapain.protocols.planning import Bag, CoursePlan, TargetRequest, build_plan
from ketapain.reports.plan_document import render_handout_html, render_plan_html

VITALS = {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 72, "spo2_pct": 98}
HEALTHY = {
    "patient_id": "<script>alert(1)</script>",
    "age_y": 45,
    "sex": "female",
    "weight_kg": 68,
    "height_cm": 165,
    "diagnoses": ["crps_1"],
    "vitals": VITALS,
}
HYPERTENSIVE = HEALTHY | {"patient_id": "htn-1", "history": ["uncontrolled_hypertension"]}
START = date(2026, 12, 7)
BAG = Bag(drug_mg=250, volume_ml=250)
VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})


class _TagChecker(HTMLParser):
    """Records the tags that are closed out of order or left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append(f"</{tag}> at {self.getpos()} with {self.stack}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


def _text(html: str) -> str:
    """The visible text with whitespace collapsed."""
    return " ".join("".join(_parse(html).text).split())


def _plan(data: dict, protocol: str, **kwargs) -> CoursePlan:
    kwargs.setdefault("predict_outcome", False)
    return build_plan(
        Patient.from_dict(data), get_protocol(protocol), start_date=START, bag=BAG, **kwargs
    )


@pytest.fixture(scope="module")
def ten_weekdays() -> CoursePlan:
    """Ten weekdays for the healthy 68 kg patient, without prediction."""
    return _plan(HEALTHY, "ten-weekdays")


@pytest.fixture(scope="module")
def seed_predicted() -> CoursePlan:
    """seed-outpatient with decision, oral follow-on, boosters and a prediction."""
    return _plan(HEALTHY, "seed-outpatient", predict_outcome=True, follow_up_days=14)


@pytest.fixture(scope="module")
def blocked() -> CoursePlan:
    """A plan blocked by the screening hard stop uncontrolled_hypertension."""
    return _plan(HYPERTENSIVE, "single-day")


@pytest.fixture(scope="module")
def overridden() -> CoursePlan:
    """The blocked plan with the hard stop overridden by a named clinician."""
    ov = Override(
        code="uncontrolled_hypertension",
        clinician="Dr A. <b>Jones</b>",
        reason="BP & pulse controlled on review",
    )
    return _plan(HYPERTENSIVE, "single-day", overrides=[ov])


@pytest.fixture(scope="module")
def targeted() -> CoursePlan:
    """Target mode, 150 ng/mL in plasma, with a prediction."""
    return _plan(
        HEALTHY,
        "single-day",
        target=TargetRequest(conc_ng_per_ml=150),
        predict_outcome=True,
        follow_up_days=7,
    )


def test_plan_html_parses_and_shows_the_sessions(ten_weekdays: CoursePlan):
    """The chart copy is well-formed HTML with every session date and the pump rate."""
    html = render_plan_html(ten_weekdays)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    checker = _parse(html)
    assert {"html", "head", "body", "table", "h1"} <= set(checker.tags)
    text = _text(html)
    for s in ten_weekdays.sessions:
        assert f"{s.date:%a %d %b %Y}" in text
    assert "Sat 12 Dec" not in text
    assert html.count("<strong>23.8</strong>") == 10  # one pump rate per session
    assert "95.2" in text
    assert "952" in text  # cumulative dose of the course
    assert "No un-overridden hard stop" in text
    assert "BLOCKED" not in text
    assert "Premedication" in text
    assert "midazolam" in text
    assert "Schwartzman" in text  # sources
    assert "Prescriber:" in text  # signature line
    assert 'id="prediction"' not in html  # no prediction asked for
    assert "<img" not in html  # no figure given
    assert "Target concentration" not in text


def test_plan_html_escapes_the_patient_id(ten_weekdays: CoursePlan):
    """A patient id with markup is escaped, never emitted as a tag."""
    html = render_plan_html(ten_weekdays)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "script" not in _parse(html).tags


def test_plan_html_escapes_a_protocol_title(ten_weekdays: CoursePlan):
    """Text from a protocol file (the title) is escaped in both documents."""
    plan = replace(ten_weekdays, protocol=replace(ten_weekdays.protocol, title="A <i>& B"))
    for html in (render_plan_html(plan), render_handout_html(plan)):
        assert "A &lt;i&gt;&amp; B" in html
        assert "<i>" not in html
        _parse(html)


def test_plan_html_of_a_blocked_plan(blocked: CoursePlan):
    """A blocked plan says BLOCKED and lists the hard stop first."""
    assert blocked.blocked
    html = render_plan_html(blocked)
    text = _text(html)
    assert "BLOCKED" in text
    assert 'class="status blocked"' in html
    assert "No un-overridden hard stop" not in text
    rows = re.findall(r'<tr class="(\w+)">', html)
    assert rows[0] == "hard_stop"
    assert "uncontrolled_hypertension" in text
    assert "(overridden)" not in text


def test_plan_html_of_an_overridden_plan(overridden: CoursePlan):
    """An overridden hard stop shows the clinician, the reason and is not BLOCKED."""
    assert not overridden.blocked
    html = render_plan_html(overridden)
    text = _text(html)
    assert "BLOCKED" not in text
    assert "hard_stop (overridden)" in text
    assert "Overridden by Dr A. <b>Jones</b>: BP & pulse controlled on review" in text
    assert "Dr A. &lt;b&gt;Jones&lt;/b&gt;" in html  # the name is escaped, not markup
    assert "BP &amp; pulse" in html
    assert "b" not in _parse(html).tags


def test_plan_html_with_prediction_decisions_oral_and_boosters(seed_predicted: CoursePlan):
    """With a prediction the chart copy has the prediction table and the course's rules."""
    assert seed_predicted.prediction is not None
    html = render_plan_html(seed_predicted)
    text = _text(html)
    assert 'id="prediction"' in html
    assert "Prediction (model, not a promise)" in text
    summary = seed_predicted.prediction.summary
    assert f"{summary.peak_plasma_ng_per_ml:.0f} ng/mL" in text
    assert f"{seed_predicted.course_dose_mg:.0f} mg" in text
    assert "Decision points" in text
    assert "Tue 08 Dec 2026, after session 2:" in text
    assert "if continued after session 2" in text
    assert "Oral follow-on prescription" in text
    assert "08:00, 14:00, 20:00" in text
    assert "Boosters" in text
    assert "Titration" in text


def test_plan_html_cites_undated_sources_without_a_double_full_stop(
    seed_predicted: CoursePlan,
):
    """Sources without a year are cited as 'n.d.' with a single full stop."""
    assert "n.d.." not in render_plan_html(seed_predicted)


def test_plan_html_embeds_the_figure(ten_weekdays: CoursePlan, tmp_path: Path):
    """A figure path is embedded as a base64 PNG data URI of exactly that file."""
    figure = tmp_path / "fig.png"
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    figure.write_bytes(payload)
    html = render_plan_html(ten_weekdays, figure=figure)
    _parse(html)
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match is not None
    assert base64.b64decode(match.group(1)) == payload
    assert html.count("<img") == 1


def test_plan_html_missing_figure_raises(ten_weekdays: CoursePlan, tmp_path: Path):
    """A figure path that does not exist is an OSError (the CLI turns it into exit 2)."""
    with pytest.raises(FileNotFoundError):
        render_plan_html(ten_weekdays, figure=tmp_path / "missing.png")


def test_plan_html_target_mode(targeted: CoursePlan):
    """Target mode adds the target section with the end concentration per session."""
    html = render_plan_html(targeted)
    text = _text(html)
    assert "Target concentration" in text
    assert "Target 150 ng/mL (plasma)" in text
    session = targeted.sessions[0]
    assert session.target is not None
    assert f"{session.target.end_conc_ng_per_ml:.1f}" in text
    for st in session.steps:
        assert f"<strong>{st.rate_ml_per_h:.1f}</strong>" in html


def test_handout_has_the_patient_information(ten_weekdays: CoursePlan):
    """The handout explains ketamine, gives the schedule, escort and no-driving rules."""
    html = render_handout_html(ten_weekdays)
    text = _text(html)
    assert "NMDA" in text
    assert "central sensitization" in text
    assert "An adult must take you home." in text
    assert "Do not drive" in text
    assert "until the next day after a night's sleep" in text
    assert "at least 60 minutes" in text
    assert "First infusion: Monday 07 December 2026 at 09:00" in text
    for s in ten_weekdays.sessions:
        assert f"{s.date:%A %d %B}" in text
    assert "Saturday" not in text
    assert "midazolam" in text
    assert "clonidine" in text
    assert "by mouth" not in text  # no oral follow-on in this protocol
    assert "if we decide together to go on" not in text
    assert "<script>" not in html
    assert "alert(1)" not in html  # the handout does not print the patient id


def test_handout_with_decision_and_oral_follow_on(seed_predicted: CoursePlan):
    """The handout marks sessions after the decision and gives the oral prescription."""
    text = _text(render_handout_html(seed_predicted))
    assert "After infusion 2 (Tuesday 08 December) you and your doctor decide together" in text
    assert text.count("if we decide together to go on") == 5
    assert "Ketamine by mouth after the infusions" in text
    assert "34 mg of ketamine by mouth at 08:00, 14:00, 20:00" in text
    assert "From Wednesday 16 December to Tuesday 29 December" in text
    assert "grapefruit" in text
    assert "If the pain comes back" in text


def test_handout_of_a_blocked_plan_still_renders(blocked: CoursePlan):
    """The handout renders for any plan (the chart copy carries the BLOCKED status)."""
    text = _text(render_handout_html(blocked))
    assert "Monday 07 December" in text


def test_documents_of_an_oral_only_plan():
    """A protocol without infusions renders both documents (no schedule rows)."""
    plan = _plan(HEALTHY, "oral-follow-on")
    assert plan.sessions == ()
    assert plan.oral is not None
    chart = _text(render_plan_html(plan))
    handout = _text(render_handout_html(plan))
    assert "Oral follow-on prescription" in chart
    assert "First infusion: Monday 07 December 2026" in handout
    assert "by mouth" in handout
