"""Lambda layer versions from ``layers/build/<name>`` (built by ``make layers``; see layers/README.md)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from . import constants as C
from .assets import layer_asset


class StratumLayers(Construct):
    """One ``LayerVersion`` per layer in ``layers/layers.json``; ``for_function`` returns them in order."""

    def __init__(self, scope: Construct, construct_id: str, *, layers_build_dir: Path, placeholder_dir: Path) -> None:
        super().__init__(scope, construct_id)
        self.config = C.layers_config()
        self.layers: dict[str, lambda_.LayerVersion] = {}
        self.not_built: list[str] = []
        for name, spec in self.config["layers"].items():
            asset = layer_asset(name, layers_build_dir, placeholder_dir)
            layer = lambda_.LayerVersion(
                self,
                name.capitalize(),
                code=lambda_.Code.from_asset(str(asset.path), exclude=["manifest.json"]),
                compatible_runtimes=[C.RUNTIME],
                compatible_architectures=[C.ARCHITECTURE],
                description=spec["description"][:256],
            )
            if not asset.built:
                self.not_built.append(name)
                Annotations.of(layer).add_error(
                    f"Lambda layer '{name}' has not been built ({layers_build_dir / name / 'python'} is missing): "
                    "run `make layers` before deploying. The synthesized template uses an empty placeholder."
                )
            self.layers[name] = layer

    def for_function(self, function: str) -> list[lambda_.ILayerVersion]:
        try:
            names = self.config["functions"][function]
        except KeyError:
            raise KeyError(f"function {function!r} is not listed in layers/layers.json 'functions'") from None
        return [self.layers[n] for n in names]
