"""``MonitorsConstruct``: the place for the scheduled monitors (EventBridge). Creates nothing yet.

The monitor rules (docs/monitor-rules.md) will run in a ``monitors`` function (``functions/monitors/
handler.py``) on an EventBridge schedule, reading the lake and the metadata table. Until that handler exists
the construct is a no-op: enabling it (``-c stratum:monitors=true``) fails the synth with a clear message
rather than deploying a function without code.

When the function lands, this construct will:

- build it with ``StratumFunction`` (asset ``functions/monitors`` + stratum, the ``ingest`` or a dedicated
  layer) and read-only lake/metadata permissions;
- add an ``events.Rule`` with ``Schedule.rate(...)`` targeting it, so the handler receives the classic
  ``{"detail-type": "Scheduled Event", "source": "aws.events", ...}`` envelope that the tests use;
- add an alarm on the function's errors.
"""

from __future__ import annotations

from pathlib import Path

from constructs import Construct

MONITORS_HANDLER = Path("functions") / "monitors" / "handler.py"


class MonitorsConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, enabled: bool, project_root: Path) -> None:
        super().__init__(scope, construct_id)
        self.enabled = enabled
        if not enabled:
            return
        handler = project_root / MONITORS_HANDLER
        if not handler.is_file():
            raise ValueError(f"stratum:monitors is enabled but {MONITORS_HANDLER} does not exist yet")
        raise NotImplementedError(
            "the scheduled monitors are not wired yet: add the function and its EventBridge schedule in "
            "infra/stratum_infra/monitors.py"
        )
