"""What an agent run on one unit leaves behind: the final explanation, every probe with the unit's
activations on it, and each revision with the probe that caused it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from autointerp.agent.probes import ProbeRecord
from autointerp.agent.rules import Hypothesis
from autointerp.records import UnitKind


class Revision(BaseModel):
    calls: int  # subject-model calls spent when the revision was made
    before: str
    after: str
    reason: str


class AgentTrace(BaseModel):
    unit_kind: UnitKind
    unit_index: int
    driver: str  # "offline", "openai:MODEL", ...
    initial: str  # the explanation the agent started from
    final: str
    hypothesis: Hypothesis | None = None  # the offline driver's rule behind `final`
    budget: int
    calls: int
    revisions: list[Revision] = Field(default_factory=list)
    probes: list[ProbeRecord] = Field(default_factory=list)
