"""Regenerate ``stratum_client/models.py`` from the repository's ``openapi.json``.

python sdk/python/generate_models.py            # write the module
python sdk/python/generate_models.py --check    # exit 1 when the committed module has drifted
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "openapi.json"
TARGET = HERE / "src" / "stratum_client" / "models.py"
OPTIONS = [
    "--input-file-type", "openapi",
    "--output-model-type", "pydantic_v2.BaseModel",
    "--target-python-version", "3.10",
    "--enum-field-as-literal", "all",
    "--use-annotated",
    "--formatters", "builtin",
    "--disable-timestamp",
]  # fmt: skip


def generate(out: Path) -> None:
    exe = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run([str(exe), "--input", str(SPEC), "--output", str(out), *OPTIONS], check=True)
    text = out.read_text().replace(f"#   filename:  {SPEC.name}", "#   filename:  openapi.json")
    out.write_text(text)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as d:
            fresh = Path(d) / "models.py"
            generate(fresh)
            if fresh.read_text() != TARGET.read_text():
                print(f"{TARGET} is out of date with openapi.json: run python sdk/python/generate_models.py")
                return 1
        return 0
    generate(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
