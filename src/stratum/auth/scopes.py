"""API key scopes and the permission table.

A key carries one or more scopes; a route names one *action*; ``allows(scopes, action)`` says whether
any of the key's scopes grants it. The table is exact and closed: no scope implies another (``admin``
does not imply ``full``, ``full`` does not imply ``admin``), and an action missing from the table is a
programming error (``ValueError``), never a silent allow.

=============  ==========================================================  =================
action         what it covers                                              scopes
=============  ==========================================================  =================
upload         upload STDF, presign, inspect                               ingest, full
job_status     check job status                                            ingest, read, full
analytics      analytics and lots GET routes                               read, full
sql_schema     SQL schema discovery                                        read, full
sql_run        run SQL                                                     full
classify       POST /v1/classify (one wafer map)                           classify, full
batch          POST /v1/batch (up to 100 maps, or a lot)                   batch, full
read_patterns  GET /v1/patterns, /v1/patterns/{class_id}[/example.png]     read:patterns, read, full
manage         usage statistics and export                                 manage
admin          monitor / webhook / key management of the key's workspace  admin
monitor_read   list monitors, their runs and findings; cron preview        read, full, admin
monitor_run    run a monitor now, backtest it                              full, admin
notifications  read, mark read, dismiss notifications; inbox preferences   read, full, admin
webhooks       manage outbound/inbound webhooks, deliveries, redeliver     manage, admin
=============  ==========================================================  =================

Scopes never cross workspaces: a key belongs to exactly one workspace and the caller must also check
that the request's workspace is the key's (``KeyRecord.workspace``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from stratum.errors import StratumError

SCOPES: tuple[str, ...] = ("ingest", "read", "classify", "batch", "read:patterns", "manage", "full", "admin")

ACTIONS: tuple[str, ...] = (
    "upload",
    "job_status",
    "analytics",
    "sql_schema",
    "sql_run",
    "classify",
    "batch",
    "read_patterns",
    "manage",
    "admin",
    "monitor_read",
    "monitor_run",
    "notifications",
    "webhooks",
)

#: action -> the scopes that allow it (read-only view; tests iterate it row by row)
PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "upload": frozenset({"ingest", "full"}),
        "job_status": frozenset({"ingest", "read", "full"}),
        "analytics": frozenset({"read", "full"}),
        "sql_schema": frozenset({"read", "full"}),
        "sql_run": frozenset({"full"}),
        "classify": frozenset({"classify", "full"}),
        "batch": frozenset({"batch", "full"}),
        "read_patterns": frozenset({"read:patterns", "read", "full"}),
        "manage": frozenset({"manage"}),
        "admin": frozenset({"admin"}),
        "monitor_read": frozenset({"read", "full", "admin"}),
        "monitor_run": frozenset({"full", "admin"}),
        "notifications": frozenset({"read", "full", "admin"}),
        "webhooks": frozenset({"manage", "admin"}),
    }
)


#: action -> what it lets a caller do, as 403 messages say it (a user knows scopes, not action names)
DOES: Mapping[str, str] = MappingProxyType(
    {
        "upload": "upload or inspect STDF files",
        "job_status": "read ingest jobs",
        "analytics": "read lots, wafers, tests and analytics",
        "sql_schema": "read the SQL schema",
        "sql_run": "run SQL queries",
        "classify": "classify wafer maps",
        "batch": "classify wafer maps in batches",
        "read_patterns": "read the pattern catalogue",
        "manage": "read usage statistics",
        "admin": "manage monitors, webhooks and keys",
        "monitor_read": "read monitors, their runs and findings",
        "monitor_run": "run or backtest monitors",
        "notifications": "read or manage notifications",
        "webhooks": "manage webhooks and their deliveries",
    }
)


def needed_scopes(action: str) -> list[str]:
    """The scopes that allow ``action``, in the canonical order of ``SCOPES``."""
    return [s for s in SCOPES if s in PERMISSIONS[action]]


def denied(scopes: Iterable[str], action: str) -> str:
    """The 403 message: what the key may not do, the scopes it has and the scopes that would allow it."""
    have = ", ".join(s for s in SCOPES if s in set(scopes)) or "none"
    need = " or ".join(repr(s) for s in needed_scopes(action))
    many = "one of the scopes" if len(needed_scopes(action)) > 1 else "the scope"
    does = DOES.get(action, "call this route")  # tests check every action has its wording
    return f"this API key (scopes: {have}) may not {does}: that needs {many} {need}"


class PermissionDenied(StratumError):
    """The key is valid but its scopes do not allow the action (HTTP 403)."""

    status, code, title = 403, "forbidden", "Forbidden"


def allows(scopes: Iterable[str], action: str) -> bool:
    """True when one of ``scopes`` grants ``action``. Unknown scopes grant nothing; an unknown action
    raises ``ValueError`` (a route wired to a misspelt action must fail loudly in tests)."""
    try:
        allowed = PERMISSIONS[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}") from None
    if isinstance(scopes, str):  # a lone string would be iterated character by character
        scopes = (scopes,)
    return any(s in allowed for s in scopes)


def require(scopes: Iterable[str], action: str) -> None:
    """Raise ``PermissionDenied`` unless ``allows(scopes, action)``."""
    if not allows(scopes, action):
        raise PermissionDenied(denied(scopes, action), required_scopes=needed_scopes(action))


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validate, de-duplicate and put scopes in canonical order. Raises ``ValueError``."""
    if isinstance(scopes, str):
        scopes = (scopes,)
    given = set()
    for s in scopes:
        if s not in SCOPES:
            raise ValueError(f"unknown scope {s!r}; known: {', '.join(SCOPES)}")
        given.add(s)
    if not given:
        raise ValueError("an API key needs at least one scope")
    return tuple(s for s in SCOPES if s in given)
