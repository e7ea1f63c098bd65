"""Example maps of every taxonomy class, drawn offline by the dev generator
(the dev tool ``patterns_examples`` in the devtools wing) and stored as bit-packed rasters in examples.json."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from importlib import resources

import numpy as np

from stratum.errors import NotFound
from stratum.patterns.geometry import DieMap

FILE = "examples.json"


@lru_cache(maxsize=1)
def _table() -> dict:
    try:
        return json.loads(resources.files("stratum.patterns").joinpath(FILE).read_text())
    except FileNotFoundError:
        return {}


def pack(dm: DieMap) -> dict:
    x0, y0 = int(dm.x.min()), int(dm.y.min())
    w, h = int(dm.x.max()) - x0 + 1, int(dm.y.max()) - y0 + 1
    valid = np.zeros((h, w), bool)
    fail = np.zeros((h, w), bool)
    valid[dm.y - y0, dm.x - x0] = True
    fail[dm.y - y0, dm.x - x0] = dm.fail
    enc = lambda a: base64.b64encode(np.packbits(a.ravel()).tobytes()).decode()  # noqa: E731
    out = {"w": w, "h": h, "valid": enc(valid), "fail": enc(fail)}
    if dm.site is not None:
        site = np.zeros((h, w), np.uint8)
        site[dm.y - y0, dm.x - x0] = dm.site
        out["site"] = base64.b64encode(site.tobytes()).decode()
    return out


def unpack(d: dict) -> DieMap:
    w, h = d["w"], d["h"]
    dec = lambda s: np.unpackbits(np.frombuffer(base64.b64decode(s), np.uint8))[: w * h].reshape(h, w).astype(bool)  # noqa: E731
    valid, fail = dec(d["valid"]), dec(d["fail"])
    yy, xx = np.nonzero(valid)
    site = None
    if "site" in d:
        site = np.frombuffer(base64.b64decode(d["site"]), np.uint8).reshape(h, w)[yy, xx].astype(np.int64)
    return DieMap(x=xx.astype(np.int64), y=yy.astype(np.int64), fail=fail[yy, xx], site=site)


def example(class_id: str) -> DieMap:
    d = _table().get(class_id)
    if d is None:
        raise NotFound(f"no example map stored for {class_id!r}")
    return unpack(d)
