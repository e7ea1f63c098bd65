"""Settings read from the environment (``stratum.settings.from_environ``): prefix, case, nested groups, JSON
values, aliases, and keyword arguments over the environment. These are the rules pydantic-settings applied
before it was replaced (its import was ~15 % of a ``stratum sql`` process); each case was compared with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stratum.settings import Settings, from_environ, settings_for


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.upper().startswith(("STRATUM_", "AWS_LAMBDA_")):
            monkeypatch.delenv(k)
    return monkeypatch


def test_top_level_and_nested_variables_any_case(clean_env) -> None:
    clean_env.setenv("STRATUM_BACKEND", "aws")
    clean_env.setenv("stratum_aws__region", "eu-west-1")
    clean_env.setenv("STRATUM_AWS__LAKE_BUCKET", "lake")
    clean_env.setenv("STRATUM_AWS__NOT_A_FIELD", "x")  # ignored, as the group ignores extra fields
    clean_env.setenv("STRATUM_NOT_A_FIELD", "x")
    s = Settings()
    assert (s.backend, s.aws.region, s.aws.lake_bucket, s.aws.drop_prefix) == ("aws", "eu-west-1", "lake", "incoming/")


def test_a_group_as_json_with_its_variables_merged_over_it(clean_env) -> None:
    clean_env.setenv("STRATUM_SQL", '{"max_rows": 5, "isolate": false, "timeout_seconds": 9}')
    clean_env.setenv("STRATUM_SQL__TIMEOUT_SECONDS", "2")
    clean_env.setenv("STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS", "[1, 2.5]")
    s = Settings()
    assert (s.sql.max_rows, s.sql.isolate, s.sql.timeout_seconds, s.sql.page_rows) == (5, False, 2.0, 1000)
    assert s.delivery.retry_schedule_seconds == [1.0, 2.5]


def test_aliases_first_then_the_prefixed_name(clean_env) -> None:
    clean_env.setenv("STRATUM_LAMBDA_MEMORY_MB", "512")
    assert Settings().lambda_memory_mb == 512
    clean_env.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    clean_env.setenv("aws_lambda_initialization_type", "on-demand")
    s = Settings()
    assert (s.lambda_memory_mb, s.lambda_initialization_type) == (1769, "on-demand")


def test_keyword_arguments_and_overrides_win_key_by_key(clean_env) -> None:
    clean_env.setenv("STRATUM_SQL__MAX_ROWS", "11")
    clean_env.setenv("STRATUM_DATA_DIR", "~/stratum-env")
    s = Settings(data_dir="/tmp/k", sql={"page_rows": 9})
    assert (s.data_dir, s.sql.max_rows, s.sql.page_rows) == (Path("/tmp/k"), 11, 9)
    assert Settings().data_dir == Path("~/stratum-env").expanduser()
    s = settings_for("/tmp/f", sql={"timeout_seconds": 3})
    assert (s.data_dir, s.sql.max_rows, s.sql.timeout_seconds) == (Path("/tmp/f"), 11, 3.0)
    # validation reads the environment too (a SQL worker gets every field explicitly, so nothing of it is used)
    assert Settings.model_validate({"backend": "local"}).sql.max_rows == 11


def test_bad_values_are_clear_errors(clean_env) -> None:
    clean_env.setenv("STRATUM_SQL__MAX_ROWS", "many")
    with pytest.raises(ValidationError, match="sql.max_rows"):
        Settings()
    clean_env.delenv("STRATUM_SQL__MAX_ROWS")
    clean_env.setenv("STRATUM_SQL", "{max_rows")
    with pytest.raises(ValueError, match="environment variable STRATUM_SQL: not valid JSON"):
        Settings()


def test_from_environ_gives_raw_values() -> None:
    env = {"STRATUM_WARM_UP": "false", "STRATUM_MONITORS__TICK_SECONDS": "5", "OTHER": "1"}
    assert from_environ(env) == {"warm_up": "false", "monitors": {"tick_seconds": "5"}}
