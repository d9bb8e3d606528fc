"""ketapain.analytics: survival curves and the running and summary of virtual trials."""

from ketapain.analytics.survival import KaplanMeier, kaplan_meier
from ketapain.analytics.trials import ArmSummary, TrialResult, run_trial

__all__ = ["ArmSummary", "KaplanMeier", "TrialResult", "kaplan_meier", "run_trial"]
