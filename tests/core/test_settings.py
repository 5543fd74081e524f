from pathlib import Path

import pytest

from yarnit.core import ConfigError, load_settings


def test_defaults_put_everything_in_the_workspace(tmp_path: Path) -> None:
    s = load_settings({"YARNIT_HOME": str(tmp_path / "ws")})
    assert s.home == tmp_path / "ws"
    assert s.db_url == f"sqlite:///{tmp_path / 'ws' / 'yarnit.db'}"
    assert s.online_store_url.startswith("sqlite:///")
    assert s.artifacts_dir == tmp_path / "ws" / "artifacts"
    assert s.api_token is None and s.dask_scheduler is None


def test_plain_postgresql_url_gets_the_psycopg_driver() -> None:
    s = load_settings({"YARNIT_DB_URL": "postgresql://u@h:5432/db"})
    assert s.db_url == "postgresql+psycopg://u@h:5432/db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"YARNIT_DB_URL": "mysql://root@h/db"}, "YARNIT_DB_URL='mysql://root@h/db' has scheme 'mysql'; supported"),
        ({"YARNIT_ONLINE_STORE": "memcached://h"}, "YARNIT_ONLINE_STORE.*supported schemes: sqlite, redis"),
        ({"YARNIT_DASK_SCHEDULER": "localhost:8786"}, "is not a scheduler address. Use tcp://host:port"),
        ({"YARNIT_API_TOKEN": "short"}, "YARNIT_API_TOKEN is 5 characters long; use at least 16"),
    ],
)
def test_bad_values_name_the_variable_the_value_and_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        load_settings({"YARNIT_HOME": str(tmp_path / "f")})


def test_token_is_not_shown_in_repr() -> None:
    s = load_settings({"YARNIT_API_TOKEN": "s3cret-token-0123456789"})
    assert "s3cret" not in repr(s)


def test_db_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"YARNIT_DB_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(info.value)
