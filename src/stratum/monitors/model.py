"""Monitors, runs and findings: the models stored in the metadata store and shown by the API.

A monitor is a rule over the lake (``rule: {kind, params}``, kinds in :mod:`stratum.monitors.rules`),
a scope (lot, part type, program, tester: any combination; none = the whole workspace), a trigger (a
schedule expression in a time zone, or ``on_ingest``) and the channel refs that delivery notifies.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stratum.models import utcnow

from . import schedule as sch

MonitorState = Literal["active", "paused"]
RunStatus = Literal["ok", "fired", "failed", "skipped"]
RUN_STATUSES: tuple[str, ...] = ("ok", "fired", "failed", "skipped")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}:[^\s]{1,480}$")


class MonitorScope(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    lot_id: str | None = Field(None, min_length=1, max_length=255)
    part_type: str | None = Field(None, min_length=1, max_length=255)
    program: str | None = Field(None, min_length=1, max_length=255)
    tester: str | None = Field(None, min_length=1, max_length=255, description="Tester host (MIR.NODE_NAM) or type")

    def matches(self, lot: Any) -> bool:
        if self.lot_id is not None and lot.lot_id != self.lot_id:
            return False
        if self.part_type is not None and lot.part_type != self.part_type:
            return False
        if self.program is not None and lot.program != self.program:
            return False
        return self.tester is None or self.tester in (lot.node_name, lot.tester_type)


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    expression: str = Field(..., max_length=256, examples=["cron(0 6 ? * MON-FRI *)", "rate(1 hour)"])
    timezone: str = Field("UTC", max_length=64, description="IANA time zone")

    @model_validator(mode="after")
    def _valid(self) -> ScheduleSpec:
        try:
            sch.parse(self.expression, self.timezone)
        except sch.ScheduleError as exc:
            raise ValueError(exc.detail) from None
        return self


class Trigger(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    schedule: ScheduleSpec | None = None
    on_ingest: bool = False

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.schedule is not None) == bool(self.on_ingest):
            raise ValueError("a trigger is either {schedule: {expression, timezone}} or {on_ingest: true}")
        return self


class RuleSpec(BaseModel):
    """``params`` are validated by the rule kind's own model (defaults filled in)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    kind: str = Field(..., max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> RuleSpec:
        from .rules import REGISTRY

        rule = REGISTRY.get(self.kind)
        if rule is None:
            raise ValueError(f"rule.kind: unknown rule kind {self.kind!r}; one of {', '.join(sorted(REGISTRY))}")
        try:
            self.params = rule.params_model.model_validate(self.params).model_dump(mode="json")
        except ValidationError as exc:
            where = "; ".join(f"rule.params.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            raise ValueError(where) from None
        return self


def _channels(v: list[str]) -> list[str]:
    for ref in v:
        if not _CHANNEL.match(ref):
            raise ValueError(f"notify: {ref!r} is not a channel ref (kind:id, e.g. 'inbox:default', 'webhook:wh_1')")
    return v


class MonitorIn(BaseModel):
    """Body of ``POST /v1/monitors``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    label: str = Field(..., min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    rule: RuleSpec
    scope: MonitorScope = Field(default_factory=MonitorScope)  # type: ignore[arg-type]
    trigger: Trigger
    notify: list[str] = Field(default_factory=list, max_length=20, description="Channel refs, e.g. 'inbox:default'")
    state: MonitorState = "active"

    _notify = field_validator("notify")(_channels)


class MonitorPatch(BaseModel):
    """Body of ``PATCH /v1/monitors/{id}``: the fields to change."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    label: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    rule: RuleSpec | None = None
    scope: MonitorScope | None = None
    trigger: Trigger | None = None
    notify: list[str] | None = Field(None, max_length=20)
    state: MonitorState | None = None

    @field_validator("notify")
    @classmethod
    def _n(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _channels(v)


class Monitor(BaseModel):
    model_config = ConfigDict(defer_build=True)
    monitor_id: str
    workspace: str
    label: str
    description: str | None = None
    rule: RuleSpec
    scope: MonitorScope
    trigger: Trigger
    notify: list[str] = Field(default_factory=list)
    state: MonitorState = "active"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    rule_version: int = 1

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"workspace"})


class Finding(BaseModel):
    """One subject that fired (``kind: fired``) or recovered (``kind: recovered``). ``values`` are the
    aggregates that triggered it; with ``rule``, ``rule_version``, ``params`` and ``snapshot_job_ids`` the
    numbers can be reproduced."""

    model_config = ConfigDict(defer_build=True)

    finding_id: str
    monitor_id: str
    run_id: str
    kind: Literal["fired", "recovered"] = "fired"
    rule: str
    rule_version: int
    params: dict[str, Any]
    subject: dict[str, Any]
    values: dict[str, Any]
    message: str
    snapshot_job_ids: list[str]
    created_at: datetime = Field(default_factory=utcnow)


class RunRecord(BaseModel):
    model_config = ConfigDict(defer_build=True)
    run_id: str
    monitor_id: str
    trigger: Literal["manual", "schedule", "ingest", "backtest"] = "manual"
    status: RunStatus = "ok"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    latency_ms: float | None = None
    rule: str
    rule_version: int
    lots: list[str] = Field(default_factory=list)
    snapshot_job_ids: list[str] = Field(default_factory=list)
    findings: int = 0
    recoveries: int = 0
    finding_ids: list[str] = Field(default_factory=list)
    error: str | None = None
