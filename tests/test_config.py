"""Settings from --home and the KANDJI_BRIDGE_* environment, as CLI.md (Global) promises."""

import stat
from pathlib import Path

import platformdirs
import pytest

from kandji_bridge.config import ensure_home, load_settings, parse_allowed_hosts
from kandji_bridge.errors import ConfigError
from kandji_bridge.kandji.limits import KandjiLimits
from kandji_bridge.logs.store import open_ready_store
from kandji_bridge.logs.user_queries import QueryLimits


def test_home_flag_beats_the_environment(tmp_path: Path) -> None:
    env = {"KANDJI_BRIDGE_HOME": str(tmp_path / "from-env")}
    assert load_settings(home=tmp_path / "from-flag", env=env).home == tmp_path / "from-flag"


def test_home_from_the_environment(tmp_path: Path) -> None:
    env = {"KANDJI_BRIDGE_HOME": str(tmp_path / "from-env")}
    assert load_settings(env=env).home == tmp_path / "from-env"


def test_home_defaults_to_the_user_data_dir() -> None:
    expected = Path(platformdirs.user_data_dir("kandji-bridge"))
    assert load_settings(env={}).home == expected
    assert load_settings(env={"KANDJI_BRIDGE_HOME": ""}).home == expected


def test_home_expands_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(home="~/kb", env={}).home == tmp_path / "kb"


def test_home_from_the_environment_fixture(home: Path) -> None:
    settings = load_settings()
    assert settings.home == home
    assert settings.secret_key_file == home / "secret.key"


def test_database_url_defaults_to_sqlite_in_the_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'state.db'}"


def test_database_url_from_the_environment(tmp_path: Path) -> None:
    url = "postgresql+psycopg://kb:kb@db.internal:5432/kb"
    settings = load_settings(home=tmp_path, env={"KANDJI_BRIDGE_DATABASE_URL": url})
    assert settings.database_url == url


def test_log_store_defaults_to_chdb_in_the_home(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path, env={}).log_store == f"chdb://{tmp_path / 'logs'}"


def test_log_store_from_the_environment(tmp_path: Path) -> None:
    url = "clickhouse://default:pw@ch.internal:8123/kandji"
    settings = load_settings(home=tmp_path, env={"KANDJI_BRIDGE_LOG_STORE": url})
    assert settings.log_store == url


def test_secret_key_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path, env={}).secret_key is None
    assert load_settings(home=tmp_path, env={"KANDJI_BRIDGE_SECRET_KEY": ""}).secret_key is None
    env = {"KANDJI_BRIDGE_SECRET_KEY": "a long passphrase here"}
    assert load_settings(home=tmp_path, env=env).secret_key == "a long passphrase here"


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        (None, set()),
        ("", set()),
        ("127.0.0.1:8089", {"127.0.0.1:8089"}),
        (" Kandji.Example.COM , ,127.0.0.1:8089,", {"kandji.example.com", "127.0.0.1:8089"}),
        ("a.example,a.example", {"a.example"}),
    ],
)
def test_allowed_hosts_parsing(value: str | None, hosts: set[str]) -> None:
    assert parse_allowed_hosts(value) == frozenset(hosts)


def test_allowed_hosts_from_the_environment(tmp_path: Path) -> None:
    env = {"KANDJI_BRIDGE_ALLOWED_HOSTS": "127.0.0.1:8089, sim.local"}
    settings = load_settings(home=tmp_path, env=env)
    assert settings.allowed_hosts == {"127.0.0.1:8089", "sim.local"}


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-folder"
    path.write_text("")
    with pytest.raises(ConfigError) as caught:
        load_settings(home=path, env={})
    assert str(caught.value) == (
        f"The home {path} is a file, not a folder; pass --home with a folder path."
    )


def test_ensure_home_creates_an_owner_only_folder(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "a" / "home", env={})
    assert ensure_home(settings) == tmp_path / "a" / "home"
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    ensure_home(settings)  # again: nothing to do


def test_ensure_home_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    settings = load_settings(home=tmp_path / "file" / "home", env={})
    with pytest.raises(ConfigError) as caught:
        ensure_home(settings)
    assert str(caught.value) == (
        f"Cannot create the home folder {tmp_path / 'file' / 'home'} (Not a directory); "
        "pass --home with a folder you can write to."
    )


def test_lease_seconds_and_trusted_proxies_from_the_environment(tmp_path: Path) -> None:
    defaults = load_settings(tmp_path, env={})
    assert defaults.lease_seconds == 30 and defaults.forwarded_allow_ips == ()
    settings = load_settings(
        tmp_path,
        env={
            "KANDJI_BRIDGE_LEASE_SECONDS": "2.5",
            "KANDJI_BRIDGE_FORWARDED_ALLOW_IPS": " 10.0.0.5, 10.1.0.0/16,::1",
        },
    )
    assert settings.lease_seconds == 2.5
    assert settings.forwarded_allow_ips == ("10.0.0.5", "10.1.0.0/16", "::1")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("KANDJI_BRIDGE_LEASE_SECONDS", "0", "must be a number of seconds from 1 to 3600"),
        ("KANDJI_BRIDGE_LEASE_SECONDS", "soon", "must be a number of seconds from 1 to 3600"),
        ("KANDJI_BRIDGE_FORWARDED_ALLOW_IPS", "proxy.local", "is not an IP address or network"),
    ],
)
def test_a_bad_lease_or_proxy_setting_is_one_sentence(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, env={name: value})
    assert says in str(error.value) and str(error.value).endswith(".")


def test_kandji_limits_default_and_come_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).kandji_limits == KandjiLimits()
    limits = load_settings(
        tmp_path,
        env={
            "KANDJI_BRIDGE_RESPONSE_SECONDS": "2.5",
            "KANDJI_BRIDGE_RUN_SECONDS": "600",
            "KANDJI_BRIDGE_MAX_AUDIT_PAGES": "50",
            "KANDJI_BRIDGE_MAX_DEVICE_PAGES": "7",
        },
    ).kandji_limits
    assert limits == KandjiLimits(2.5, 600, 50, 7)


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
def test_a_bad_kandji_limit_is_one_sentence(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=f"KANDJI_BRIDGE_MAX_AUDIT_PAGES is '{value}'; set it"):
        load_settings(tmp_path, env={"KANDJI_BRIDGE_MAX_AUDIT_PAGES": value})


def test_query_limits_default_and_come_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).query_limits == QueryLimits(
        seconds=120, memory_mb=2048, per_user=2, total=4
    )
    env = {
        "KANDJI_BRIDGE_QUERY_SECONDS": "30",
        "KANDJI_BRIDGE_QUERY_MEMORY_MB": "512",
        "KANDJI_BRIDGE_QUERIES_PER_USER": "1",
        "KANDJI_BRIDGE_QUERIES": "8",
    }
    assert load_settings(tmp_path, env=env).query_limits == QueryLimits(
        seconds=30, memory_mb=512, per_user=1, total=8
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("KANDJI_BRIDGE_QUERY_MEMORY_MB", "2GB", "a number of megabytes from 16 to 1,048,576"),
        ("KANDJI_BRIDGE_QUERY_SECONDS", "0", "a number of seconds from 1 to 86,400"),
        ("KANDJI_BRIDGE_QUERIES_PER_USER", "-1", "a count from 1 to 1,000"),
        ("KANDJI_BRIDGE_QUERIES", "1001", "a count from 1 to 1,000"),
    ],
)
def test_a_bad_query_limit_is_one_sentence(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(tmp_path, env={name: value})
    assert str(bad.value) == f"{name} must be {says}, not {value!r}."


def test_the_log_store_takes_its_query_limits_from_the_settings_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the settings say holds; the environment is read once, by load_settings.
    monkeypatch.setenv("KANDJI_BRIDGE_QUERIES", "not a count")
    settings = load_settings(tmp_path, env={"KANDJI_BRIDGE_QUERY_SECONDS": "7"})
    store, _ = open_ready_store(settings.log_store, settings.query_limits)
    try:
        assert store.query_limits.seconds == 7 and store.query_limits.total == 4
    finally:
        store.close()
