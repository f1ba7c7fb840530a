"""Input the commands used to take for something else: each said "nothing" and exited 0, or
silently used a default, where the person had made a mistake."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mirror.cli import main


def test_listing_a_token_file_that_is_not_there_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`token list --file typo.json` said "no tokens in typo.json" (exit 0)."""
    for command in ("token", "admin"):
        assert main([command, "list", "--file", str(tmp_path / "typo.json")]) == 2
        assert f"no file {tmp_path / 'typo.json'}" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["", "../x"])
def test_corpus_check_of_no_crate_name_is_an_error(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`corpus check ''` said "no look-alike" (exit 0)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("serde 100\ntokio 90\n")
    assert main(["corpus", "check", name, "--corpus", str(corpus)]) == 2
    assert repr(name) in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--bins", "--root-keys", "--root-threshold"])
def test_tuf_init_takes_zero_for_zero_not_for_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """`tuf init --bins 0` made 256 bins and `--root-keys 0` made 2 keys, exit 0."""
    with pytest.raises(SystemExit) as info:
        main(["tuf", "init", "--repo", str(tmp_path / "repo"), flag, "0"])
    assert info.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_a_malformed_token_file_is_exit_status_2_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list` and `add` said 2, `revoke` 1 (the status of "nothing to revoke")."""
    bad = tmp_path / "tokens.json"
    bad.write_text("{not json")
    for command in ("token", "admin"):
        for argv in (["list"], ["add", "bob"], ["revoke", "bob"]):
            assert main([command, *argv, "--file", str(bad)]) == 2, (command, argv)
    assert bad.read_text() == "{not json"


def test_a_reader_that_goes_away_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crate-mirror tuf status | head -1` printed "tuf status: [Errno 32] Broken pipe"."""
    from mirror.cli import tuf_cmd

    def status(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(tuf_cmd, "_settings", status)
    assert main(["tuf", "status", "--repo", "r"]) == 0
    assert "Broken pipe" not in capsys.readouterr().err


def test_a_new_key_leaves_the_directories_it_did_not_make_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tuf key new --out alice.pem` made the working directory 0700; `--out DIR` said it
    was "refusing to overwrite existing key file"."""
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    monkeypatch.chdir(work)
    assert main(["tuf", "key", "new", "--out", "alice.pem", "--pub-out", "alice.pub"]) == 0
    assert stat.S_IMODE(work.stat().st_mode) == 0o755
    assert stat.S_IMODE((work / "alice.pem").stat().st_mode) == 0o600
    assert main(["tuf", "key", "new", "--out", "keys/bob.pem", "--pub-out", "bob.pub"]) == 0
    assert stat.S_IMODE((work / "keys").stat().st_mode) == 0o700  # made for the key
    assert main(["tuf", "key", "new", "--out", str(work), "--pub-out", "x.pub"]) == 1
    assert "is a directory: give the key file's name" in capsys.readouterr().err
