"""Request bodies shared by the routers: strict (unknown keys refused), units in names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Body", "Correction", "OverrideIn"]


class Body(BaseModel):
    """A request body: unknown keys are errors, so a typo never drops a value."""

    model_config = ConfigDict(extra="forbid")


class OverrideIn(Body):
    """A physician's override of a hard stop: its code and the reason."""

    code: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Correction(Body):
    """A correction of a record: the reason, and the changed values (or a retraction)."""

    reason: str = Field(min_length=1)
    entered_in_error: bool = False
    changes: dict[str, object] = Field(default_factory=dict)
