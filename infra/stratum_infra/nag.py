"""cdk-nag (classic API, 2.38.x) helpers: every suppression carries a reason written for that resource."""

from __future__ import annotations

from collections.abc import Sequence

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

MIN_REASON = 10


def suppress(
    construct: IConstruct | Sequence[IConstruct],
    rule: str,
    reason: str,
    applies_to: Sequence[str | RegexAppliesTo] | None = None,
    *,
    children: bool = True,
) -> None:
    """Suppress ``AwsSolutions-<rule>`` on ``construct`` (and its children) with a specific reason."""
    if len(reason.strip()) < MIN_REASON:
        raise ValueError(f"cdk-nag reason for {rule} is too short: {reason!r}")
    rule_id = rule if rule.startswith("AwsSolutions-") else f"AwsSolutions-{rule}"
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule_id, reason=reason, applies_to=list(applies_to) if applies_to else None)],
        apply_to_children=children,
    )


def resource_regex(logical_prefix: str, suffix: str) -> RegexAppliesTo:
    """``Resource::<LogicalId.Arn><suffix>`` for a logical id starting with ``logical_prefix``.

    cdk-nag renders ``Fn::GetAtt`` as ``<LogicalId.Arn>``; logical ids end in a hash, hence the prefix match.
    """
    escaped = suffix.replace("/", "\\/").replace("*", "\\*").replace(".", "\\.")
    return RegexAppliesTo(regex=f"/^Resource::<{logical_prefix}[A-Za-z0-9]*\\.Arn>{escaped}$/g")
