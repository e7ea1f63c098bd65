#!/usr/bin/env python3
"""Stratum CDK app. Synthesizes offline into infra/cdk.out: ``cd infra && ../.venv/bin/python app.py``.

Also the app command of infra/cdk.json (``npx cdk synth|diff|deploy`` from infra/ with the venv active).
Context (``-c key=value`` on the CDK CLI, or infra/cdk.json):

- ``stratum:stackName`` (default ``Stratum``);
- ``stratum:apiIntegrationTimeoutSeconds`` (default 29; above 29 needs the API Gateway quota increase);
- ``stratum:monitors`` (default true; the monitors function, schedule group and ingest-event rule).
"""

import sys

from stratum_infra.application import create_app, report

app, stack = create_app(outdir="cdk.out")
assembly = app.synth()
sys.exit(report(assembly, stack))
