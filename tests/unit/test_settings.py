"""Settings from the environment (stratum.settings.environment_values): the rules pydantic-settings applied
(prefix STRATUM_, nested groups with __ or as a JSON object, case-insensitive names, JSON lists, aliases read
from their own variable, unknown variables ignored, constructor values over the environment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stratum.settings import Settings, SettingsError, environment_values, settings_for


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for k in list(os.environ):
        if k.upper().startswith(("STRATUM_", "AWS_LAMBDA_")):
            monkeypatch.delenv(k)

    def set_(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)

    return set_


def test_defaults_without_variables(env) -> None:
    s = Settings()
    assert (s.backend, s.workspace, s.sql.max_rows, s.lambda_memory_mb, s.warm_up) == (
        "local",
        "default",
        100_000,
        0,
        True,
    )
    assert s == Settings.model_validate({})


def test_top_level_names_are_prefixed_and_case_insensitive(env) -> None:
    env(STRATUM_BACKEND="aws", stratum_workspace="lower", STRATUM_DATA_DIR="~/lake", STRATUM_WARM_UP="0")
    s = Settings()
    assert (s.backend, s.workspace, s.warm_up) == ("aws", "lower", False)
    assert s.data_dir == Path("~/lake").expanduser()


def test_nested_groups_by_delimiter_and_as_json_object(env) -> None:
    env(STRATUM_SQL__MAX_ROWS="5", Stratum_Sql__Isolate="false", STRATUM_RATE_LIMITS__SQL_PER_WINDOW="31")
    s = Settings()
    assert (s.sql.max_rows, s.sql.isolate, s.sql.page_rows, s.rate_limits.sql_per_window) == (5, False, 1_000, 31)
    # the group as JSON; each __ variable wins over its key (max_rows=5 is still set)
    env(STRATUM_SQL='{"max_rows": 9, "page_rows": 2, "queue_seconds": 1.5}', STRATUM_SQL__PAGE_ROWS="3")
    s = Settings()
    assert (s.sql.max_rows, s.sql.page_rows, s.sql.queue_seconds, s.sql.isolate) == (5, 3, 1.5, False)


def test_list_values_are_json(env) -> None:
    env(STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS="[1, 2.5]")
    assert Settings().delivery.retry_schedule_seconds == [1.0, 2.5]
    env(STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS="[1,")
    with pytest.raises(SettingsError, match="STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS: not valid JSON"):
        Settings()


def test_aliased_fields_read_their_own_variable_only(env) -> None:
    env(AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048", AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")
    env(STRATUM_LAMBDA_MEMORY_MB="99", STRATUM_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency")
    s = Settings()
    assert (s.lambda_memory_mb, s.lambda_initialization_type) == (2048, "on-demand")
    assert settings_for(None, lambda_memory_mb=512).lambda_memory_mb == 512  # by name, as the CLI passes it


def test_unknown_variables_are_ignored_and_empty_strings_kept(env) -> None:
    env(STRATUM_NOPE="1", STRATUM_SQL__NOPE="2", STRATUM_AWS__LAKE_BUCKET="", STRATUM_AWS__REGION="eu-west-1")
    s = Settings()
    assert (s.aws.lake_bucket, s.aws.region) == ("", "eu-west-1")
    assert environment_values(Settings, {"STRATUM_NOPE": "1", "OTHER": "2"}) == {}


def test_constructor_values_win_over_the_environment_and_merge_into_groups(env) -> None:
    env(STRATUM_BACKEND="aws", STRATUM_SQL__PAGE_ROWS="3", STRATUM_SQL__MAX_ROWS="4")
    s = Settings(backend="local", sql={"max_rows": 1})
    assert (s.backend, s.sql.max_rows, s.sql.page_rows) == ("local", 1, 3)


def test_an_invalid_value_names_the_field(env) -> None:
    env(STRATUM_MAX_UPLOAD_BYTES="x")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [e["loc"] for e in info.value.errors()] == [("max_upload_bytes",)]
    env(STRATUM_MAX_UPLOAD_BYTES="10", STRATUM_ENVIRONMENT="prod")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [e["loc"] for e in info.value.errors()] == [("environment",)]


def test_settings_for_reads_the_environment_once_then_applies_overrides(env, tmp_path: Path) -> None:
    from stratum.settings import get_settings

    get_settings.cache_clear()
    try:
        env(STRATUM_WORKSPACE="from-env", STRATUM_SQL__MAX_ROWS="7")
        s = settings_for(tmp_path, backend="local")
        assert (s.workspace, s.sql.max_rows, s.data_dir) == ("from-env", 7, tmp_path)
    finally:
        get_settings.cache_clear()
