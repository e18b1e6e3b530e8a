"""Shared CLI behaviour: ``--out`` checked before any work (issue 8 item 10), one usage-error
format, ``--version`` and flag rendering in ``--help`` (item 18)."""

from __future__ import annotations

import errno
import os
import re

import pytest

from hopfield import __version__
from hopfield.cli import _common, app, main

# every command with --out, with the other arguments it needs to get past parsing
OUT_COMMANDS = {
    "reproduce": ["reproduce", "mil", "--smoke"],
    "bench": ["bench", "steps", "--quick", "--repeats", "1", "--no-progress"],
    "demo": ["demo", "--quick"],
    "heads": ["heads", "no-such-model-folder"],
    "capacity": ["capacity", "--quick", "--no-progress"],
    "landscape": ["landscape"],
    "beta-sweep": ["beta-sweep", "--no-progress"],
}


def _commands_with_out() -> set[str]:
    import typer

    group = typer.main.get_command(app)
    return {name for name, cmd in group.commands.items()
            if any("--out" in p.opts for p in cmd.params)}


def test_the_table_covers_every_command_with_out():
    assert _commands_with_out() == set(OUT_COMMANDS)


def _snapshot(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_naming_an_existing_file_is_a_usage_error(tmp_path, capsys, command):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    before = _snapshot(tmp_path)
    assert main([*OUT_COMMANDS[command], "--out", str(f)]) == 2
    err = capsys.readouterr().err
    # the --out error, not a later one (heads' MODEL_PATH would be checked in the command body)
    assert "Error: Invalid value for '--out': must be a folder" in err and "is an existing file" in err
    assert f.read_text() == "keep me" and _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_below_a_file_is_a_usage_error(tmp_path, capsys, command):
    (tmp_path / "f").write_text("x")
    assert main([*OUT_COMMANDS[command], "--out", str(tmp_path / "f" / "sub")]) == 2
    assert "Invalid value for '--out': must be a folder, but its parent" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_on_a_read_only_filesystem_is_a_usage_error(tmp_path, capsys, monkeypatch, command):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(_common.tempfile, "TemporaryFile", read_only)
    out = tmp_path / "new" / "out"
    assert main([*OUT_COMMANDS[command], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--out': must be a writable folder" in err
    assert "Read-only file system" in err and str(tmp_path) in err
    assert _snapshot(tmp_path) == []  # nothing created


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_out_in_a_folder_without_write_permission(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["landscape", "--out", str(locked / "o")]) == 2
        assert "must be a writable folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_check_out_dir_accepts_writable_folders_and_creates_nothing(tmp_path):
    assert _common.check_out_dir(tmp_path) == tmp_path
    deep = tmp_path / "a" / "b" / "c"
    assert _common.check_out_dir(deep) == deep
    assert _snapshot(tmp_path) == []


@pytest.mark.parametrize("argv,param", [
    (["reproduce", "tiger"], "PART"),
    (["bench", "nosuch"], "SUITE"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["demo", "--n-patterns", "1"], "--n-patterns"),
    (["capacity", "--queries", "0"], "--queries"),
    (["landscape", "--beta", "0"], "--beta"),
    (["heads", "no-such-model-folder"], "MODEL_PATH"),
])
def test_one_usage_error_format(tmp_path, capsys, argv, param):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"^Error: Invalid value for '{re.escape(param)}", err, re.MULTILINE), err
    assert "Try 'hopfield " in err and "Traceback" not in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hopfield {__version__}"


@pytest.mark.parametrize("command", [None, *sorted(_commands_with_out())])
def test_help_lists_flags_without_a_type(capsys, command):
    assert main([command, "--help"] if command else ["--help"]) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out and "--help" in out
    if command in ("demo", "capacity"):
        assert re.search(r"^\s+--quick\s{2,}\S", out, re.MULTILINE), out  # "--quick   Fewer ..." no metavar
