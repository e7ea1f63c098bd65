"""Key tiers, per-key limit overrides and monthly quotas.

A key's tier is chosen when it is created (``stratum keys create --tier pilot|production``); rate limits
and quotas are overridable per key there (``--limit analytics=600/min``, ``--quota classifications=2000/month``).

==========  ===================  ==============  ================================
tier        classify rate        batch size      classifications per month
==========  ===================  ==============  ================================
pilot       10 requests / min    10 maps         500
production  100 requests / min   100 maps        set per key (default: unlimited)
==========  ===================  ==============  ================================

A key without a tier (created before tiers, or for non-classification use) has the deployment's
default rate limits (``Settings.rate_limits``), batches up to ``PatternSettings.max_batch`` and no quota.
Quotas count classifications (maps classified) per calendar month, UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stratum.auth.ratelimit import BUCKETS

QUOTAS: tuple[str, ...] = ("classifications",)


@dataclass(frozen=True)
class Tier:
    name: str
    rates_per_min: dict[str, int] = field(default_factory=dict)  # bucket -> requests per minute
    batch_max: int = 100
    quotas: dict[str, int] = field(default_factory=dict)  # quota -> per calendar month


TIERS: dict[str, Tier] = {
    "pilot": Tier("pilot", {"classify": 10}, batch_max=10, quotas={"classifications": 500}),
    "production": Tier("production", {"classify": 100}, batch_max=100, quotas={}),
}

_LIMIT = re.compile(r"^([a-z_]+)=(\d{1,9})/(s|sec|min|h|hour)$")
_QUOTA = re.compile(r"^([a-z_]+)=(\d{1,12})/(month)$")
_PER_MIN = {"s": 60.0, "sec": 60.0, "min": 1.0, "h": 1 / 60, "hour": 1 / 60}


def parse_limit(text: str) -> tuple[str, float]:
    """``analytics=600/min`` -> ("analytics", 600.0 per minute). Raises ValueError."""
    m = _LIMIT.match(text.strip())
    if not m:
        raise ValueError(f"bad --limit {text!r}: expected BUCKET=N/min (or /s, /h), e.g. analytics=600/min")
    bucket, n, unit = m.group(1), int(m.group(2)), m.group(3)
    if bucket not in BUCKETS:
        raise ValueError(f"bad --limit {text!r}: unknown bucket {bucket!r}; known: {', '.join(BUCKETS)}")
    return bucket, n * _PER_MIN[unit]


def parse_quota(text: str) -> tuple[str, int]:
    """``classifications=2000/month`` -> ("classifications", 2000). Raises ValueError."""
    m = _QUOTA.match(text.strip())
    if not m:
        raise ValueError(f"bad --quota {text!r}: expected NAME=N/month, e.g. classifications=2000/month")
    if m.group(1) not in QUOTAS:
        raise ValueError(f"bad --quota {text!r}: unknown quota {m.group(1)!r}; known: {', '.join(QUOTAS)}")
    return m.group(1), int(m.group(2))


def month_window(now: float) -> tuple[str, datetime]:
    """(``YYYY-MM`` of ``now``, start of the next month, UTC)."""
    t = datetime.fromtimestamp(now, UTC)
    nxt = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return f"{t.year:04d}-{t.month:02d}", nxt


@dataclass(frozen=True)
class KeyLimits:
    """What a key may do: its tier plus its per-key overrides (None: the deployment default)."""

    tier: str | None = None
    rates_per_min: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)

    def rate_per_min(self, bucket: str) -> float | None:
        if bucket in self.rates_per_min:
            return self.rates_per_min[bucket]
        t = TIERS.get(self.tier or "")
        return float(t.rates_per_min[bucket]) if t and bucket in t.rates_per_min else None

    def batch_max(self, default: int) -> int:
        t = TIERS.get(self.tier or "")
        return min(t.batch_max, default) if t else default

    def quota(self, name: str) -> int | None:
        if name in self.quotas:
            return self.quotas[name]
        t = TIERS.get(self.tier or "")
        return t.quotas.get(name) if t else None
