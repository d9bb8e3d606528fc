"""The controlled-substance log: receipts, draws, witnessed waste, returns, corrections,
balances per lot, the ledger, bag accounts and discrepancies, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import User, create_user
from ketapain.clinic.audit import SYSTEM, AuditEntry, unit_of_work
from ketapain.clinic.controlled import (
    EntryKind,
    StockEntry,
    correct_entry,
    draw,
    receive,
    return_stock,
    waste,
)
from ketapain.clinic.db import utc_now
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.stock_accounts import (
    bag_accounts,
    default_tolerance_mg,
    discrepancies,
    ledger,
    lot_balances,
    witnesses,
)
from ketapain.clinic.treatment import create_course
from ketapain.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidValueError,
    RecordNotFoundError,
)

MONDAY = date(2026, 11, 23)
LOT = "KET-1"


def _ago(minutes: float) -> datetime:
    return utc_now() - timedelta(minutes=minutes)


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course (68 kg) for the fixture patient (MRN T-0001)."""
    return create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=MONDAY, bag_mg=250, bag_ml=250,
    )  # fmt: skip


@pytest.fixture
def bag(db, staff, course, make_ready):
    """Session 1's bag of 250 mg in 250 mL, lot KET-1, hung, checklist complete."""
    row = hang_infusion(
        db, staff["nurse"], course.id, session_number=1, bag_mg=250, bag_ml=250, lot=LOT
    )
    make_ready(row.id, row.patient_id)
    return row


@pytest.fixture
def stocked(db, staff):
    """Lot KET-1 received: 10 vials of 10 mL at 50 mg/mL (5000 mg), 6 h ago."""
    return receive(
        db, staff["nurse"], lot=LOT, vial_mg_per_ml=50.0, vial_ml=10.0, vials=10,
        occurred_utc=_ago(360),
    )  # fmt: skip


def _run(db, staff, bag, *, rate=20.0, start_min=150, stop_min=30):
    """Start the pump at ``rate`` mg/h and stop it (40 mg over 2 h by default); return
    the start time."""
    nurse, now = staff["nurse"], utc_now()
    start = now - timedelta(minutes=start_min)
    pump_event(db, nurse, bag.id, kind="start", rate_mg_per_h=rate, time_utc=start)
    if stop_min is not None:
        stop = now - timedelta(minutes=stop_min)
        pump_event(db, nurse, bag.id, kind="stop", time_utc=stop)
    return start


def _waste_bag(db, staff, bag, amount_mg, **kw):
    return waste(
        db, staff["nurse"], lot=LOT, amount_mg=amount_mg, witness_username="doc",
        infusion_id=bag.id, reason="left in the bag", **kw,
    )  # fmt: skip


def _entries(db) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(StockEntry)) or 0)


def _balance(db, staff, lot=LOT):
    with db.session() as s:
        return {b["lot"]: b for b in lot_balances(s, staff["nurse"])}[lot]


def _bags(db, staff, **kw):
    with db.session() as s:
        return bag_accounts(s, staff["nurse"], **kw)


def _flags(db, staff, **kw):
    with db.session() as s:
        return discrepancies(s, staff["physician"], **kw)


# --- receipts ----------------------------------------------------------------------------


def test_receipt_amount_is_vials_times_ml_times_strength(db, staff, stocked):
    """10 vials x 10 mL x 50 mg/mL is 5000 mg, 100 mL on hand, audited as a create."""
    assert stocked.amount_mg == pytest.approx(5000.0)
    assert stocked.as_dict()["kind"] == "receipt"
    b = _balance(db, staff)
    assert (b["received_mg"], b["on_hand_mg"], b["on_hand_ml"], b["vials"]) == (
        5000.0, 5000.0, 100.0, 10,
    )  # fmt: skip
    with db.session() as s:
        audited = s.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "stock_entries", AuditEntry.entity_id == str(stocked.id)
            )
        ).all()
    assert [a.action for a in audited] == ["create"]


def test_a_receipt_row_whose_amount_is_not_the_product_is_refused(db, staff):
    """The record itself refuses a receipt amount other than vials x mL x mg/mL."""
    row = StockEntry(
        kind=EntryKind.RECEIPT, lot=LOT, amount_mg=4999.0, vial_mg_per_ml=50.0,
        vial_ml=10.0, vials=10,
    )  # fmt: skip
    with pytest.raises(InvalidValueError, match="vials x mL x mg/mL = 5000") as err:
        add_row(db, staff["nurse"], Action.CONTROLLED_LOG, row)
    assert err.value.field == "amount_mg"
    assert _entries(db) == 0


# An impossible receipt, and the field its refusal names.
BAD_RECEIPTS = [
    ({"vials": 2.5}, "vials"),
    ({"vials": 0}, "vials"),
    ({"vial_mg_per_ml": 0.0}, "vial_mg_per_ml"),
    ({"vial_mg_per_ml": 500.0}, "vial_mg_per_ml"),  # above the 100 mg/mL vials sold
    ({"vial_ml": None}, "vial_ml"),
    ({"lot": "  "}, "lot"),
    ({"occurred_utc": utc_now() + timedelta(minutes=5)}, "occurred_utc"),
    ({"occurred_utc": datetime(2026, 11, 1, 9)}, "occurred_utc"),  # no offset
]


def test_receipt_refusals_name_the_field(db, staff):
    """Each impossible receipt is refused naming its field; nothing is written."""
    good = {"lot": LOT, "vial_mg_per_ml": 50.0, "vial_ml": 10.0, "vials": 10}
    for values, field in BAD_RECEIPTS:
        with pytest.raises(InvalidValueError) as err:
            receive(db, staff["nurse"], **good | values)
        assert err.value.field == field, values
    assert _entries(db) == 0


def test_a_lot_keeps_its_strength(db, staff, stocked):
    """A second receipt of the same lot at another strength is a conflict; at the same one
    it adds up."""
    with pytest.raises(ConflictError, match="received at 50 mg/mL"):
        receive(db, staff["nurse"], lot=LOT, vial_mg_per_ml=10.0, vial_ml=10.0, vials=1)
    receive(db, staff["nurse"], lot=f" {LOT} ", vial_mg_per_ml=50.0, vial_ml=10.0, vials=1)
    assert _balance(db, staff)["on_hand_mg"] == pytest.approx(5500.0)


# --- draws -------------------------------------------------------------------------------


def test_draw_over_the_balance_is_refused_naming_lot_and_balance(db, staff, bag):
    """Stock never goes negative: the exact balance may be drawn, a milligram more not."""
    receive(db, staff["nurse"], lot=LOT, vial_mg_per_ml=50.0, vial_ml=5.0, vials=1)  # 250 mg
    with pytest.raises(ConflictError, match="lot KET-1 holds 250 mg") as err:
        draw(db, staff["nurse"], lot=LOT, amount_mg=251.0, infusion_id=bag.id)
    assert err.value.field == "amount_mg"
    assert _entries(db) == 1
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    assert _balance(db, staff)["on_hand_mg"] == pytest.approx(0.0)
    with pytest.raises(ConflictError, match="holds 0 mg"):
        draw(db, staff["nurse"], lot=LOT, amount_mg=0.01, infusion_id=bag.id)
    with pytest.raises(ConflictError, match="lot NEVER holds 0 mg"):
        draw(db, staff["nurse"], lot="NEVER", amount_mg=1.0, infusion_id=bag.id)


def test_draw_needs_an_infusion_and_a_positive_amount(db, staff, stocked, bag):
    """A draw names an existing infusion and an amount above 0."""
    import uuid

    with pytest.raises(RecordNotFoundError):
        draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=uuid.uuid4())
    for amount in (0.0, -5.0, None, True):
        with pytest.raises(InvalidValueError) as err:
            draw(db, staff["nurse"], lot=LOT, amount_mg=amount, infusion_id=bag.id)
        assert err.value.field == "amount_mg"
    assert _entries(db) == 1


# --- waste and witnesses -----------------------------------------------------------------


@pytest.fixture
def retired_nurse(db):
    """A nurse whose account was deactivated."""
    user = create_user(
        db, SYSTEM, username="gone", full_name="Former Nurse", role="nurse",
        password="test-password-1",
    )  # fmt: skip
    with unit_of_work(db, SYSTEM) as s:
        s.get(User, user.id).active = False
    return user


# A witness who cannot be one, and why.
BAD_WITNESSES = [
    (None, "username of a second physician or nurse"),
    ("  ", "username of a second physician or nurse"),
    ("nurse", "someone other than the recorder"),
    ("desk", "an active physician or nurse"),
    ("admin", "an active physician or nurse"),
    ("nobody", "an active physician or nurse"),
    ("gone", "an active physician or nurse"),
]


def test_waste_needs_another_physician_or_nurse_as_witness(db, staff, stocked, retired_nurse):
    """No witness, the recorder, the front desk, an admin, an unknown or an inactive user
    is refused, naming the field ``witness``; nothing is written."""
    for witness, why in BAD_WITNESSES:
        with pytest.raises(InvalidValueError, match=why) as err:
            waste(
                db, staff["nurse"], lot=LOT, amount_mg=5.0, witness_username=witness,
                reason="vial dropped",
            )  # fmt: skip
        assert err.value.field == "witness", witness
    assert _entries(db) == 1


def test_waste_from_stock_with_a_witness(db, staff, stocked):
    """A physician witnesses the nurse's waste from stock: the lot goes down, the witness
    and the reason are kept; more than the lot holds is refused; a reason is needed."""
    row = waste(
        db, staff["nurse"], lot=LOT, amount_mg=50.0, witness_username="doc",
        reason="vial cracked",
    )  # fmt: skip
    assert row.witness_id == staff["physician"].user_id and row.note == "vial cracked"
    b = _balance(db, staff)
    assert (b["wasted_mg"], b["on_hand_mg"]) == (50.0, 4950.0)
    with pytest.raises(ConflictError, match="holds 4950 mg"):
        waste(db, staff["nurse"], lot=LOT, amount_mg=5000.0, witness_username="doc",
              reason="x")  # fmt: skip
    with pytest.raises(InvalidValueError) as err:
        waste(db, staff["nurse"], lot=LOT, amount_mg=1.0, witness_username="doc", reason=" ")
    assert err.value.field == "reason"
    with db.session() as s:
        assert [w["username"] for w in witnesses(s, staff["nurse"])] == ["doc"]


def test_waste_from_a_bag_rules(db, staff, stocked, bag):
    """Bag waste needs a logged draw, a stopped (or never started) pump, a lot drawn into
    the bag, and no more than was drawn into it; it leaves the lot's stock alone."""
    with pytest.raises(ConflictError, match="no draw into this bag"):
        _waste_bag(db, staff, bag, 10.0)
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    _run(db, staff, bag, stop_min=None)
    with pytest.raises(ConflictError, match="still on") as err:
        _waste_bag(db, staff, bag, 10.0)
    assert err.value.field == "infusion_id"
    pump_event(db, staff["nurse"], bag.id, kind="stop", time_utc=_ago(30))
    with pytest.raises(InvalidValueError, match=r"a lot drawn into this bag \(KET-1\)"):
        waste(db, staff["nurse"], lot="KET-9", amount_mg=5.0, witness_username="doc",
              infusion_id=bag.id, reason="left")  # fmt: skip
    with pytest.raises(ConflictError, match="at most 250 mg"):
        _waste_bag(db, staff, bag, 250.5)
    _waste_bag(db, staff, bag, 200.0)
    with pytest.raises(ConflictError, match="at most 50 mg"):
        _waste_bag(db, staff, bag, 60.0)
    b = _balance(db, staff)
    assert (b["on_hand_mg"], b["wasted_mg"], b["wasted_from_bags_mg"]) == (4750.0, 0.0, 200.0)


def test_return_needs_a_note_and_stock(db, staff, stocked):
    """A return to the supplier takes from the lot, with a note; never more than on hand."""
    with pytest.raises(InvalidValueError) as err:
        return_stock(db, staff["nurse"], lot=LOT, amount_mg=500.0, note="")
    assert err.value.field == "note"
    with pytest.raises(ConflictError, match="holds 5000 mg"):
        return_stock(db, staff["nurse"], lot=LOT, amount_mg=5001.0, note="expired")
    row = return_stock(db, staff["nurse"], lot=LOT, amount_mg=500.0, note="expired: RD invoice 7")
    assert row.kind == EntryKind.RETURN
    b = _balance(db, staff)
    assert (b["returned_mg"], b["on_hand_mg"]) == (500.0, 4500.0)


# --- ledger and bag accounts -------------------------------------------------------------


def test_ledger_is_chronological_with_a_running_balance(db, staff, stocked, bag):
    """Entries sort by when they happened (not when logged); each shows the balance after
    it, who recorded it, the witness, and the patient of a draw or a bag's waste."""
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id, occurred_utc=_ago(200))
    _run(db, staff, bag)
    _waste_bag(db, staff, bag, 210.0)
    return_stock(
        db, staff["physician"], lot=LOT, amount_mg=1000.0, note="RD", occurred_utc=_ago(100)
    )
    waste(db, staff["physician"], lot=LOT, amount_mg=50.0, witness_username="nurse",
          reason="cracked", occurred_utc=_ago(300))  # fmt: skip
    with db.session() as s:
        rows = ledger(s, staff["nurse"], lot=LOT)
    assert [r["kind"] for r in rows] == ["receipt", "waste", "draw", "return", "waste"]
    assert [r["balance_mg"] for r in rows] == [5000.0, 4950.0, 4700.0, 3700.0, 3700.0]
    assert [r["change_mg"] for r in rows] == [5000.0, -50.0, -250.0, -1000.0, 0.0]
    assert [r["recorded_by_username"] for r in rows] == ["nurse", "doc", "nurse", "doc", "nurse"]
    assert [r["witness_username"] for r in rows] == [None, "nurse", None, None, "doc"]
    assert [r["patient_mrn"] for r in rows] == [None, None, "T-0001", None, "T-0001"]
    times = [r["occurred_utc"] for r in rows]
    assert times == sorted(times)
    with db.session() as s, pytest.raises(RecordNotFoundError):
        ledger(s, staff["nurse"], lot="UNKNOWN")


def test_bag_account_after_an_infusion(db, staff, stocked, bag):
    """250 mg drawn, 20 mg/h for 2 h given (40 mg, from the pump events), 210 mg wasted:
    nothing unaccounted and nothing flagged."""
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    _run(db, staff, bag)
    _waste_bag(db, staff, bag, 210.0)
    (row,) = _bags(db, staff)
    assert row["state"] == "stopped" and row["ended"] is True
    assert row["patient_mrn"] == "T-0001" and row["lot"] == LOT
    assert row["drawn_mg"] == 250.0 and row["wasted_mg"] == 210.0
    assert row["administered_mg"] == pytest.approx(40.0)
    assert row["unaccounted_mg"] == pytest.approx(0.0, abs=1e-6)
    assert row["tolerance_mg"] == pytest.approx(2.0)  # 5% of 40 mg
    assert row["discrepancies"] == [] and _flags(db, staff) == []
    assert _bags(db, staff, lot="OTHER") == []
    assert len(_bags(db, staff, lot=LOT)) == 1


def test_default_tolerance_is_pump_accuracy_with_a_floor():
    """5% of the dose given (stated pump accuracy), never below 1 mg."""
    assert default_tolerance_mg(0.0) == 1.0
    assert default_tolerance_mg(20.0) == 1.0
    assert default_tolerance_mg(400.0) == pytest.approx(20.0)


# --- discrepancies -----------------------------------------------------------------------


def _kinds(flags):
    return sorted(f["kind"] for f in flags)


def test_unaccounted_above_the_tolerance_is_flagged_once_the_bag_ended(db, staff, stocked, bag):
    """10 mg missing from a finished bag is flagged above a 2 mg tolerance, not at 10 mg or
    above; a running bag is never flagged for it."""
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    start = _run(db, staff, bag, stop_min=None)
    assert _flags(db, staff) == []  # running: 200+ mg still in the bag
    pump_event(db, staff["nurse"], bag.id, kind="stop", time_utc=start + timedelta(hours=2))
    _waste_bag(db, staff, bag, 200.0)
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "bag_unaccounted" and flag["infusion_id"] == str(bag.id)
    assert "+10.0 mg unaccounted" in flag["reason"] and "pump accuracy" in flag["reason"]
    assert flag["patient_mrn"] == "T-0001"
    assert _flags(db, staff, tolerance_mg=10.0) == []
    assert len(_flags(db, staff, tolerance_mg=9.9)) == 1
    with pytest.raises(InvalidValueError) as err:
        _flags(db, staff, tolerance_mg=-1.0)
    assert err.value.field == "tolerance_mg"


def test_over_accounted_bag_is_flagged_too(db, staff, stocked, bag):
    """More given and wasted than drawn (a negative gap) is as suspect as a missing one."""
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    _run(db, staff, bag)
    _waste_bag(db, staff, bag, 220.0)
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "bag_unaccounted" and "-10.0 mg" in flag["reason"]


def test_bag_hung_without_a_draw_is_flagged_until_drawn(db, staff, stocked, bag):
    """A hung bag with no draw logged is flagged; the draw clears it."""
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "bag_not_drawn" and flag["lot"] == LOT
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    assert _flags(db, staff) == []


def test_draw_of_another_amount_is_logged_and_flagged(db, staff, stocked, bag):
    """240 mg drawn into a 250 mg bag is recorded, and flagged; two draws adding up to the
    bag are not."""
    draw(db, staff["nurse"], lot=LOT, amount_mg=240.0, infusion_id=bag.id)
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "draw_amount" and "240 mg drawn into a bag of 250 mg" in flag["reason"]
    draw(db, staff["nurse"], lot=LOT, amount_mg=10.0, infusion_id=bag.id)
    assert _flags(db, staff) == []
    assert _balance(db, staff)["drawn_mg"] == 250.0


def test_draw_from_another_lot_than_the_bag_names_is_flagged(db, staff, stocked, bag):
    """A draw from lot KET-2 into a bag labelled KET-1 is recorded and flagged."""
    receive(db, staff["nurse"], lot="KET-2", vial_mg_per_ml=50.0, vial_ml=5.0, vials=1)
    row = draw(db, staff["nurse"], lot="KET-2", amount_mg=250.0, infusion_id=bag.id)
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "draw_lot" and flag["lot"] == "KET-2"
    assert flag["entry_id"] == str(row.id) and "bag names lot KET-1" in flag["reason"]
    assert [b["infusion_id"] for b in _bags(db, staff, lot="KET-2")] == [str(bag.id)]


def test_a_correction_that_leaves_a_lot_negative_is_flagged(db, staff, bag):
    """A receipt corrected from 50 to 10 mg/mL (amount recomputed: 100 mg) after 250 mg
    were drawn leaves the lot at -150 mg: flagged; the ledger shows the reason."""
    first = receive(db, staff["nurse"], lot=LOT, vial_mg_per_ml=50.0, vial_ml=10.0, vials=1)
    draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    fixed = correct_entry(
        db, staff["physician"], first.id, reason="invoice says 10 mg/mL",
        changes={"vial_mg_per_ml": 10.0},
    )  # fmt: skip
    assert fixed.amount_mg == pytest.approx(100.0) and fixed.corrects_id == first.id
    (flag,) = _flags(db, staff)
    assert flag["kind"] == "lot_negative" and "-150 mg" in flag["reason"]
    assert _balance(db, staff)["on_hand_ml"] == pytest.approx(-15.0)
    with db.session() as s:
        rows = ledger(s, staff["nurse"], lot=LOT)
    assert [r["balance_mg"] for r in rows] == [100.0, -150.0]
    assert rows[0]["correction_reason"] == "invoice says 10 mg/mL"


# --- corrections -------------------------------------------------------------------------


def test_retracting_a_draw_restores_the_balance(db, staff, stocked, bag):
    """A draw entered in error is retracted with a reason: the lot is whole again and the
    bag shows no draw; a correction needs a reason and only the latest version counts."""
    row = draw(db, staff["nurse"], lot=LOT, amount_mg=250.0, infusion_id=bag.id)
    with pytest.raises(InvalidValueError) as err:
        correct_entry(db, staff["nurse"], row.id, reason=" ", entered_in_error=True)
    assert err.value.field == "correction_reason"
    correct_entry(db, staff["nurse"], row.id, reason="wrong bag", entered_in_error=True)
    assert _balance(db, staff)["on_hand_mg"] == 5000.0
    assert _kinds(_flags(db, staff)) == ["bag_not_drawn"]
    with pytest.raises(ConflictError):
        correct_entry(db, staff["nurse"], row.id, reason="again", changes={"amount_mg": 1.0})


def test_correcting_a_waste_witness(db, staff, stocked):
    """A new witness is named by username and checked; the raw id is refused; the witness
    of the old entry cannot record its correction (they would witness themselves)."""
    row = waste(db, staff["nurse"], lot=LOT, amount_mg=5.0, witness_username="doc", reason="drop")
    with pytest.raises(InvalidValueError) as err:
        correct_entry(db, staff["nurse"], row.id, reason="r", changes={"witness": "desk"})
    assert err.value.field == "witness"
    with pytest.raises(InvalidValueError) as err:
        correct_entry(db, staff["nurse"], row.id, reason="r", changes={"witness_id": "x"})
    assert err.value.field == "changes.witness_id"
    with pytest.raises(InvalidValueError) as err:
        correct_entry(
            db, staff["physician"], row.id, reason="amount was 6", changes={"amount_mg": 6.0}
        )
    assert err.value.field == "witness"
    fixed = correct_entry(
        db, staff["nurse"], row.id, reason="amount was 6", changes={"amount_mg": 6.0}
    )
    assert fixed.witness_id == staff["physician"].user_id
    assert _balance(db, staff)["on_hand_mg"] == pytest.approx(4994.0)


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["front_desk", "admin"])
def test_front_desk_and_admin_may_neither_write_nor_read_the_log(db, staff, stocked, bag, role):
    """Every write and every read of the log is refused to the front desk and the admin,
    and a refused write is audited."""
    actor = staff[role]
    writes = [
        lambda: receive(db, actor, lot=LOT, vial_mg_per_ml=50.0, vial_ml=10.0, vials=1),
        lambda: draw(db, actor, lot=LOT, amount_mg=250.0, infusion_id=bag.id),
        lambda: waste(db, actor, lot=LOT, amount_mg=1.0, witness_username="doc", reason="r"),
        lambda: return_stock(db, actor, lot=LOT, amount_mg=1.0, note="n"),
        lambda: correct_entry(db, actor, stocked.id, reason="r", entered_in_error=True),
    ]
    for write in writes:
        with pytest.raises(AccessDeniedError):
            write()
    reads = [lot_balances, bag_accounts, discrepancies, witnesses]
    with db.session() as s:
        for read in reads:
            with pytest.raises(AccessDeniedError):
                read(s, actor)
        with pytest.raises(AccessDeniedError):
            ledger(s, actor, lot=LOT)
        denied = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "denied", AuditEntry.actor_role == role)
        )
    assert denied == len(writes)
    assert _entries(db) == 1
