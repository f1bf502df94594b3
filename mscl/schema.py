"""The base of every validated settings model: unknown keys are errors, assignments are validated."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
