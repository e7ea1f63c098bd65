"""One synthesized Stratum app per test session (the first synth in a process costs ~5-8 s of jsii start-up).

The app is built exactly as ``infra/app.py`` builds it (``create_app``, cdk-nag included), with
- asset bundling skipped (``aws:cdk:bundling-stacks: []``; Stratum's assets are pre-assembled folders anyway),
- function assets assembled into a temp folder, and
- a layer build folder that does not exist, so the placeholder layers are used: the suite never stages the
  ~300 MB of built layers and gives the same result on a fresh clone and on a machine that ran `make layers`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
STACK_ID = "Stratum"


@dataclass
class Synth:
    app: Any
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    outdir: Path
    build_dir: Path

    @property
    def json(self) -> dict:
        return self.template.to_json()

    @property
    def resources(self) -> dict[str, dict]:
        return self.json["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    @property
    def assets_manifest(self) -> dict:
        return json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from aws_cdk.assertions import Template
    from infra.stratum_infra.application import create_app
    from infra.stratum_infra.stack import StratumConfig

    base = tmp_path_factory.mktemp("cdk")
    config = StratumConfig(
        project_root=ROOT,
        asset_build_dir=base / "build",
        layers_build_dir=base / "layers-not-built",
    )
    app, stack = create_app(base / "cdk.out", context={"aws:cdk:bundling-stacks": []}, config=config)
    app.synth()
    return Synth(
        app=app, stack=stack, template=Template.from_stack(stack), outdir=base / "cdk.out", build_dir=base / "build"
    )


def render(value: Any) -> str:
    """Render a CloudFormation value the way cdk-nag does: Ref X -> <X>, GetAtt X.Arn -> <X.Arn>, Join -> concat."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return f"<{att[0]}.{att[1]}>" if isinstance(att, list) else f"<{att}>"
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(render(p) for p in parts)
    return json.dumps(value, sort_keys=True)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]
