"""Build the CDK app (used by ``infra/app.py`` and by the infra tests, so both synthesize the same thing)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import cx_api
from cdk_nag import AwsSolutionsChecks

from . import constants as C
from .stack import StratumConfig, StratumStack

STACK_ID = "Stratum"
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """Feature flags and defaults from infra/cdk.json.

    The CDK CLI passes them to the app; ``python app.py`` (``make synth``) does not, so they are read here too
    and both ways produce the same template.
    """
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def _context_bool(app: cdk.App, key: str, default: bool) -> bool:
    """Context flags arrive as JSON booleans from cdk.json and as strings from ``-c key=value``."""
    value = app.node.try_get_context(key)
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}


def create_app(
    outdir: str | Path = "cdk.out",
    *,
    context: Mapping[str, Any] | None = None,
    config: StratumConfig | None = None,
    nag: bool = True,
) -> tuple[cdk.App, StratumStack]:
    """The Stratum app with cdk-nag's AwsSolutions checks applied (findings become error/warning annotations)."""
    ctx = {
        **cdk_json_context(),
        # Asset paths in the template metadata, as `cdk synth` writes them: `sam build` needs them.
        "aws:cdk:enable-asset-metadata": True,
        "aws:cdk:enable-path-metadata": True,
        **dict(context or {}),
    }
    app = cdk.App(outdir=str(outdir), context=ctx, analytics_reporting=False)
    if config is None:
        config = StratumConfig(
            api_integration_timeout_seconds=int(
                app.node.try_get_context("stratum:apiIntegrationTimeoutSeconds")
                or C.DEFAULT_API_INTEGRATION_TIMEOUT_SECONDS
            ),
            monitors_enabled=_context_bool(app, "stratum:monitors", True),
            api_gateway_cloudwatch_role=_context_bool(app, "stratum:apiGatewayCloudWatchRole", True),
            bytecode=True,
        )
    stack_name = app.node.try_get_context("stratum:stackName") or STACK_ID
    stack = StratumStack(
        app,
        STACK_ID,
        stack_name=stack_name,
        config=config,
        description="Stratum: STDF ingest, Parquet lake on S3, analytics/SQL API",
    )
    cdk.Tags.of(app).add("project", "stratum")
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack


def report(assembly: cx_api.CloudAssembly, stack: StratumStack, out=sys.stderr) -> int:
    """Print error/warning annotations; return 1 if cdk-nag found unsuppressed AwsSolutions errors.

    Other errors (layer not built, handler missing) do not fail ``make synth`` - the template is still useful
    for tests and cfn-lint - but they make ``cdk deploy`` refuse with "Found errors".
    """
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    nag_errors = 0
    blockers = []
    for message in artifact.messages:
        level = str(message.level).split(".")[-1].lower()
        text = str(message.entry.data)
        if level not in ("error", "warning", "warn"):
            continue
        print(f"[{level}] {message.id}: {text.splitlines()[0]}", file=out)
        if level == "error":
            if text.startswith("AwsSolutions-"):
                nag_errors += 1
            else:
                blockers.append(text)
    if blockers:
        print(f"\nsynthesized, but NOT deployable until {len(blockers)} error(s) above are fixed", file=out)
    if nag_errors:
        print(f"\ncdk-nag: {nag_errors} unsuppressed AwsSolutions error(s)", file=out)
        return 1
    return 0
