"""The suite-wide key scan can fail: it finds a token or its secret in captured log text."""

from tests.fixtures.keyscan import find_leaks


def test_finds_full_tokens_and_bare_secrets():
    token = "stm_test_abcdefghijkl_S3cr3t-With_under_scores-0123456789abcdefghijklmnopq"
    secret = token.split("_", 3)[3]
    assert find_leaks({token}, [("x", "ok"), ("y", f"auth {token}")]) == ["y: key abcdefghijkl"]
    assert find_leaks({token}, [("z", f"secret={secret}")]) == ["z: key abcdefghijkl"]
    assert find_leaks({token}, [("w", "key abcdefghijkl used")]) == []  # the public key id alone is fine
