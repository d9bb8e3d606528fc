"""ketapain.analytics: outcomes of a cohort (the analysis table, responders, durability,
opioids, safety, calibration, the literature), survival curves, and virtual trials."""

from ketapain.analytics.cohort import COLUMNS, CohortFilter, check_cohort, deidentify
from ketapain.analytics.report import CohortAnalysis, analyse
from ketapain.analytics.survival import KaplanMeier, kaplan_meier
from ketapain.analytics.trials import ArmSummary, TrialResult, run_trial

__all__ = [
    "COLUMNS",
    "ArmSummary",
    "CohortAnalysis",
    "CohortFilter",
    "KaplanMeier",
    "TrialResult",
    "analyse",
    "check_cohort",
    "deidentify",
    "kaplan_meier",
    "run_trial",
]
