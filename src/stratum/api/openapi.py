"""Print the OpenAPI document generated from the app (``make openapi`` writes openapi.json)."""

from __future__ import annotations

import json
import sys
import tempfile


def generate() -> dict:
    from stratum.api.app import create_app
    from stratum.settings import settings_for

    with tempfile.TemporaryDirectory() as d:
        app = create_app(settings=settings_for(d, backend="local"))
        doc = app.openapi()
        app.state.runtime.close()
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(generate()))
