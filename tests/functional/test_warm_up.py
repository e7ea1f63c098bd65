"""``Runtime.warm_up`` (the API Lambda's init phase, ``stratum serve`` in the background) where the API
function's layers (query + web) ship no pyarrow: it must not fail the init phase."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import sys, tempfile

class NoPyarrow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pyarrow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPyarrow())
from stratum.runtime import Runtime
from stratum.settings import settings_for

rt = Runtime.from_settings(settings_for(tempfile.mkdtemp(), backend="local"))
rt.warm_up()
print(sorted(m for m in ("PIL", "duckdb", "numpy", "pyarrow", "stratum.render.wafermap") if m in sys.modules))
rt.close()
"""


def test_warm_up_without_pyarrow_loads_the_rest() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[0] == "['PIL', 'duckdb', 'numpy', 'stratum.render.wafermap']"


def test_warm_up_does_not_load_pyarrow_where_it_is_installed() -> None:
    """Only Arrow-format SQL results may use pyarrow (else nanoarrow): warming up does not pay its import."""
    probe = PROBE.replace("sys.meta_path.insert(0, NoPyarrow())", "")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[0] == "['PIL', 'duckdb', 'numpy', 'stratum.render.wafermap']"
