"""FHIR R4 exchange: what validating every resource costs, and import speed.

Fills a synthetic registry (``ketapain db synth``) and times, in one process:
(a) the baseline: reading every patient's record and building its FHIR resources;
(b) validating each resource against the R4B models and the R4 JSON Schema, as every
export does; (c) the whole export (``export_bundle``: read, build, validate, audit);
(d) importing that Bundle at intake into an empty database (``import_bundle``, the intake
resources; the rest reported as skipped), all or nothing in one transaction.

    uv run python bench/fhir_exchange.py [--patients 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from _common import show
from ketapain.clinic import migrate
from ketapain.clinic.accounts import create_user
from ketapain.clinic.audit import SYSTEM, reading
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import Patient
from ketapain.clinic.synthetic import fill_synthetic
from ketapain.config import DEFAULT_MRN_SYSTEM
from ketapain.fhir.export import export_bundle, patient_resources
from ketapain.fhir.intake import import_bundle
from ketapain.fhir.validation import check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        src = Database.connect(f"sqlite:///{Path(tmp) / 'registry.db'}")
        migrate.upgrade(src)
        fill_synthetic(src, patients=args.patients, today=utc_now().date(), seed=3)
        check({"resourceType": "Patient"})  # load the schema and the models once
        t0 = time.perf_counter()
        with reading(src, SYSTEM) as session:
            resources = []
            for patient in session.scalars(select(Patient).order_by(Patient.mrn)):
                resources += patient_resources(session, patient, mrn_system=DEFAULT_MRN_SYSTEM)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        bad = sum(bool(check(r)) for r in resources)
        validate = time.perf_counter() - t0
        t0 = time.perf_counter()
        bundle = export_bundle(src, SYSTEM, None, mrn_system=DEFAULT_MRN_SYSTEM)
        export = time.perf_counter() - t0
        dst = Database.connect(f"sqlite:///{Path(tmp) / 'intake.db'}")
        migrate.upgrade(dst)
        nurse = create_user(
            dst, SYSTEM, username="nurse", full_name="N", role="nurse", password="bench-pass-1"
        ).actor()
        t0 = time.perf_counter()
        result = import_bundle(
            dst, nurse, bundle, mrn_system=DEFAULT_MRN_SYSTEM, skip_unsupported=True
        )
        intake = time.perf_counter() - t0
    n = len(resources)
    counts = result.counts()
    taken = counts["created"]
    kinds = Counter(r["resourceType"] for r in resources)
    console.print(
        f"{args.patients} synthetic patients, {n:,} resources "
        f"({', '.join(f'{k} {v:,}' for k, v in kinds.most_common())}); invalid: {bad}"
    )
    show(
        console,
        f"FHIR R4 export and import ({date.today()})",
        "step|time|resources/s|x baseline",
        [
            ["read + build (baseline)", f"{build:.2f} s", f"{n / build:,.0f}", "1.0x"],
            ["validate (R4B models + R4 schema)", f"{validate:.2f} s", f"{n / validate:,.0f}",
             f"{validate / build:.2f}x"],
            ["export_bundle (all, audited)", f"{export:.2f} s", f"{n / export:,.0f}",
             f"{export / build:.2f}x"],
            [f"import at intake ({taken:,} written, {counts['skipped']:,} skipped)",
             f"{intake:.2f} s", f"{n / intake:,.0f}", f"{intake / build:.2f}x"],
        ],
        1,
    )  # fmt: skip


if __name__ == "__main__":
    main()
