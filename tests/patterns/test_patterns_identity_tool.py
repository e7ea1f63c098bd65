from __future__ import annotations

import json

from stratum.devtools import patterns_identity


def test_hash_covers_every_generator_and_compares_map_by_map(tmp_path, capsys) -> None:
    ref = tmp_path / "ref.json"
    args = ["hash", "--a", "1", "--b", "1", "--c", "0", "--d", "1", "--e", "1", "--w50", "0"]
    assert patterns_identity.main([*args, "--save", str(ref)]) == 0
    saved = json.loads(ref.read_text())
    assert sorted(k.split(":")[0] for k in saved) == ["A", "B", "D", "E"]
    assert patterns_identity.main([*args, "--against", str(ref)]) == 0
    assert "4 identical, 0 changed, 0 not in reference" in capsys.readouterr().out
    key = next(k for k in saved if k.startswith("E:"))
    saved[key][0] = "0" * 64
    ref.write_text(json.dumps(saved))
    assert patterns_identity.main([*args, "--against", str(ref)]) == 1
    assert f"changed {key}: classify" in capsys.readouterr().out
