"""Settings: YAML + environment + flags, and located errors that stop start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.config import load_settings
from mirror.errors import ConfigError
from mirror.trust.pkcs11 import PIN_ENV


def test_example_file_is_valid() -> None:
    """The shipped, commented example must load as-is."""
    settings = load_settings(Path("mirror.example.yaml"), env={})
    assert settings.listen_port == 8080


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("listen_port: 9000\noffline: false\n")
    env = {"CRATE_MIRROR_LISTEN_PORT": "9100", "CRATE_MIRROR_OFFLINE": "yes"}
    settings = load_settings(path, env=env)
    assert settings.listen_port == 9100
    assert settings.offline is True


def test_flags_override_environment(tmp_path: Path) -> None:
    settings = load_settings(
        None, env={"CRATE_MIRROR_LISTEN_PORT": "9100"}, overrides={"listen_port": 9200}
    )
    assert settings.listen_port == 9200


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("listen_port: 80\nindex_ttl: soon\n", 2, "index_ttl"),
        ("cache_dir: ./x\nbogus_key: 1\n", 2, "bogus_key"),
        ("offline: maybe\n", 1, "offline"),
        ("\n\nlisten_port: 70000\n", 3, "listen_port"),
        ("upstream_index: ftp://example\n", 1, "upstream_index"),
        ("workers: 0\n", 1, "workers"),
        ("workers: 10000\n", 1, "workers"),  # out of file descriptors, with a traceback
        ("listen_host: ''\n", 1, "listen_host"),  # bound every interface, v4 and v6
        ("listen_host: ' '\n", 1, "listen_host"),
        ("listen_port: 0\n", 1, "listen_port"),  # config.json sent cargo to port 0
        ("index_ttl: .nan\n", 1, "index_ttl"),
        ("keepalive_timeout: .inf\n", 1, "keepalive_timeout"),
        ("listen_port: [1\n", 2, "(syntax)"),  # the parser notices at end of file
    ],
)
def test_bad_setting_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert f"{path}:{line}: {field}:" in str(info.value)


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CRATE_MIRROR_LISTEN_PROT"):
        load_settings(None, env={"CRATE_MIRROR_LISTEN_PROT": "1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http2: true\n", "http2: expected auto, always or never (quoted if need be), got True"),
        ("near_name_feed: off\n", "expected public, clients or off (quoted if need be), got False"),
        ("http2: sometimes\n", "http2: expected auto, always or never"),
        ("log_level: loud\n", "log_level: expected debug, info, warning or error"),
    ],
)
def test_a_setting_that_takes_words_names_them(tmp_path: Path, text: str, message: str) -> None:
    """YAML reads `off` or `true` as a boolean: the error says which words the setting takes."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert message in str(info.value)


def test_quoted_words_and_the_environment_are_read_as_words(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('near_name_feed: "off"\n')
    settings = load_settings(path, env={"CRATE_MIRROR_HTTP2": "never"})
    assert (settings.near_name_feed, settings.http2) == ("off", "never")


def test_a_range_error_from_the_environment_names_the_variable() -> None:
    """`CRATE_MIRROR_WORKERS=0` said "workers", while a type error said the variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"CRATE_MIRROR_WORKERS": "0", "CRATE_MIRROR_INDEX_TTL": "5"})
    assert [p.field for p in info.value.problems] == ["CRATE_MIRROR_WORKERS"]
    with pytest.raises(ConfigError, match="CRATE_MIRROR_INDEX_TTL: expected a finite number"):
        load_settings(None, env={"CRATE_MIRROR_INDEX_TTL": "nan"})


def test_the_pkcs11_pin_variable_is_not_a_setting() -> None:
    """docs/trust.md has people export CRATE_MIRROR_PKCS11_PIN; every command that read the
    settings then failed with "unknown setting"."""
    settings = load_settings(None, env={PIN_ENV: "1234"})
    assert settings.listen_port == 8080


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [*x]\n", "an alias refers to the value that contains it"),  # RecursionError
        ("workers: 1\nworkers: 2\n", "workers appears twice"),  # the last one silently won
        (  # nested aliases ("billion laughs"): 10^9 values from 9 short lines
            "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "values once aliases are expanded",
        ),
    ],
)
def test_yaml_that_says_two_things_or_never_ends_is_a_located_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_type_and_range_problems_are_reported_in_one_run(tmp_path: Path) -> None:
    """`workers: -1` showed up only after `http2: true` and an unknown key were fixed."""
    path = tmp_path / "m.yaml"
    path.write_text("workers: -1\nhttp2: true\nbogus_key: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert sorted(p.field for p in info.value.problems) == ["bogus_key", "http2", "workers"]
