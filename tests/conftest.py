"""Settings shared by the whole test suite."""

from hypothesis import settings

# Simulations take milliseconds but vary with machine load; a deadline would make the
# property tests flaky without catching anything.
settings.register_profile("ketapain", deadline=None, max_examples=40)
settings.load_profile("ketapain")
