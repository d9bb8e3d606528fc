"""Settings shared by the whole test suite."""

import os

from hypothesis import settings

# Simulations take milliseconds but vary with machine load; a deadline would make the
# property tests flaky without catching anything. "thorough" is for occasional long runs:
# HYPOTHESIS_PROFILE=thorough uv run pytest tests
settings.register_profile("ketapain", deadline=None, max_examples=40)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ketapain"))
