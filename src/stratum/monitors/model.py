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


D_LABEL = "Short name of the monitor"
D_DESCRIPTION = "What the monitor watches and why (free text)"
D_RULE = "What to evaluate: a rule kind and its parameters"
D_SCOPE = "Which lots the rule looks at (every field that is set must match); empty: every lot of the workspace"
D_TRIGGER = "When to run: on a schedule or after every ingest"
D_NOTIFY = "Where findings go: channel refs kind:id, 'inbox:default' (the notification inbox) or 'webhook:<webhook id>'"
D_STATE = "`active` runs on its trigger; `paused` does not (manual runs still work)"


class MonitorScope(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    lot_id: str | None = Field(default=None, min_length=1, max_length=255, description="Only this lot (exact lot id)")
    part_type: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only lots of this product (MIR.PART_TYP, exact)"
    )
    program: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only lots of this test program (MIR.JOB_NAM, exact)"
    )
    tester: str | None = Field(
        default=None, min_length=1, max_length=255, description="Tester host (MIR.NODE_NAM) or type"
    )

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

    expression: str = Field(
        ...,
        max_length=256,
        examples=["cron(0 6 ? * MON-FRI *)", "rate(1 hour)"],
        description="EventBridge Scheduler expression: cron(minutes hours day-of-month month day-of-week year), "
        "rate(value unit) or at(yyyy-mm-ddThh:mm:ss)",
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone")

    @model_validator(mode="after")
    def _valid(self) -> ScheduleSpec:
        try:
            sch.parse(self.expression, self.timezone)
        except sch.ScheduleError as exc:
            raise ValueError(exc.detail) from None
        return self


class Trigger(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    schedule: ScheduleSpec | None = Field(default=None, description="Run on this schedule (exclusive with on_ingest)")
    on_ingest: bool = Field(default=False, description="Run after every ingest that publishes a lot snapshot in scope")

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.schedule is not None) == bool(self.on_ingest):
            raise ValueError("a trigger is either {schedule: {expression, timezone}} or {on_ingest: true}")
        return self


class RuleSpec(BaseModel):
    """``params`` are validated by the rule kind's own model (defaults filled in)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    kind: str = Field(
        ...,
        max_length=64,
        description="Rule kind: yield_below, bin_excursion, cpk_below, run_rules, site_delta, data_health, "
        "statistical_limit, sql or spatial_pattern",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The kind's parameters (defaults filled in on save); yield and bin-share limits are "
        "fractions 0-1 (e.g. yield_below {limit: 0.9})",
    )

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

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "label": "WS1 yield under 90 %",
                    "rule": {"kind": "yield_below", "params": {"limit": 0.9}},
                    "scope": {"part_type": "XC7A35T"},
                    "trigger": {"on_ingest": True},
                    "notify": ["inbox:default"],
                }
            ]
        },
    )

    label: str = Field(..., min_length=1, max_length=200, description=D_LABEL)
    description: str | None = Field(default=None, max_length=2000, description=D_DESCRIPTION)
    rule: RuleSpec = Field(description=D_RULE)
    scope: MonitorScope = Field(default_factory=MonitorScope, description=D_SCOPE)
    trigger: Trigger = Field(description=D_TRIGGER)
    notify: list[str] = Field(default_factory=list, max_length=20, description=D_NOTIFY)
    state: MonitorState = Field(default="active", description=D_STATE)

    _notify = field_validator("notify")(_channels)


class MonitorPatch(BaseModel):
    """Body of ``PATCH /v1/monitors/{id}``: the fields to change."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    label: str | None = Field(default=None, min_length=1, max_length=200, description=D_LABEL)
    description: str | None = Field(default=None, max_length=2000, description=f"{D_DESCRIPTION}; null clears it")
    rule: RuleSpec | None = Field(default=None, description=f"{D_RULE}; a changed rule bumps rule_version")
    scope: MonitorScope | None = Field(default=None, description=D_SCOPE)
    trigger: Trigger | None = Field(default=None, description=D_TRIGGER)
    notify: list[str] | None = Field(default=None, max_length=20, description=D_NOTIFY)
    state: MonitorState | None = Field(default=None, description=D_STATE)

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

    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "finding_id": "fnd_3b8c0e1f2a4d6c8e0a1b3c5d7e",
                    "monitor_id": "mon_01JD8ZZ0Q1W2E3R4T5Y6U7I8OP",
                    "run_id": "run_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "kind": "fired",
                    "rule": "yield_below",
                    "rule_version": 1,
                    "params": {"limit": 0.9},
                    "subject": {"lot_id": "LOT42", "wafer_id": "W07"},
                    "values": {"yield": 0.842, "parts": 5210, "limit": 0.9, "view": "final"},
                    "message": "final yield of W07 is 84.20% (limit 90.00%)",
                    "snapshot_job_ids": ["job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"],
                    "created_at": "2026-12-04T18:02:20.200000Z",
                }
            ]
        },
    )
    finding_id: str = Field(description="Finding id (stable for a monitor, kind, snapshot and subject)")
    monitor_id: str = Field(description="The monitor that recorded it")
    run_id: str = Field(description="The run that recorded it")
    kind: Literal["fired", "recovered"] = Field(
        default="fired", description="`fired`: the subject breaks the rule; `recovered`: it no longer does"
    )
    rule: str = Field(description="Rule kind evaluated")
    rule_version: int = Field(description="The monitor's rule version at the time")
    params: dict[str, Any] = Field(description="The rule's parameters at the time")
    subject: dict[str, Any] = Field(description="What fired, e.g. {lot_id, wafer_id} or {lot_id, test_num}")
    values: dict[str, Any] = Field(
        description="The aggregates that triggered it (yields and shares as fractions 0-1, as the rule computes)"
    )
    message: str = Field(description="The finding in words")
    snapshot_job_ids: list[str] = Field(description="Snapshots the values were computed from (reproducible)")
    created_at: datetime = Field(default_factory=utcnow, description="When it was recorded (ISO 8601, UTC)")


class RunRecord(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "run_id": "run_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "monitor_id": "mon_01JD8ZZ0Q1W2E3R4T5Y6U7I8OP",
                    "trigger": "ingest",
                    "status": "fired",
                    "started_at": "2026-12-04T18:02:20.001000Z",
                    "finished_at": "2026-12-04T18:02:20.212000Z",
                    "latency_ms": 211.0,
                    "rule": "yield_below",
                    "rule_version": 1,
                    "lots": ["LOT42"],
                    "snapshot_job_ids": ["job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"],
                    "findings": 1,
                    "recoveries": 0,
                    "finding_ids": ["fnd_9c1e2f"],
                    "error": None,
                }
            ]
        },
    )
    run_id: str = Field(description="Run id (`run_` + a ULID)")
    monitor_id: str = Field(description="The monitor run")
    trigger: Literal["manual", "schedule", "ingest", "backtest"] = Field(
        default="manual", description="What started the run"
    )
    status: RunStatus = Field(
        default="ok",
        description="`ok` nothing fired, `fired` new findings, `failed` the rule could not be evaluated (see "
        "error), `skipped` the monitor was paused",
    )
    started_at: datetime = Field(default_factory=utcnow, description="When the run started (ISO 8601, UTC)")
    finished_at: datetime | None = Field(default=None, description="When it ended (ISO 8601, UTC); null while running")
    latency_ms: float | None = Field(default=None, description="Duration of the run, milliseconds")
    rule: str = Field(description="Rule kind evaluated")
    rule_version: int = Field(description="The monitor's rule version at the time")
    lots: list[str] = Field(default_factory=list, description="Lots evaluated")
    snapshot_job_ids: list[str] = Field(default_factory=list, description="Snapshots read")
    findings: int = Field(default=0, description="New findings recorded (already-recorded ones are not repeated)")
    recoveries: int = Field(default=0, description="Subjects that recovered")
    finding_ids: list[str] = Field(default_factory=list, description="Ids of the findings recorded")
    error: str | None = Field(default=None, description="Why the run failed or was skipped; null otherwise")
