"""hopfield._io: the package's one atomic-write module (reports, figures, store metadata, saves)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hopfield import _io


def _names(d):
    return sorted(os.listdir(d))


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_exception_inside_write_keeps_old_content_and_leaves_no_temp_file(tmp_path, exc):
    target = tmp_path / "report.md"
    target.write_text("old")
    seen = []

    def write(tmp):
        seen.append(tmp)
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise exc

    with pytest.raises(type(exc)):
        _io.atomic_write(target, write)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["report.md"] and not os.path.exists(seen[0])


def test_successful_writes_replace_content_and_leave_no_temp_file(tmp_path):
    p = _io.atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert p == tmp_path / "a.txt" and p.read_text(encoding="utf-8") == "héllo\n"
    _io.atomic_write_text(tmp_path / "a.txt", "second")
    assert (tmp_path / "a.txt").read_text() == "second"
    _io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    _io.atomic_write_bytes(tmp_path / "b.bin", memoryview(b"xyz"), durable=False)
    assert (tmp_path / "b.bin").read_bytes() == b"xyz"
    _io.atomic_write_json(tmp_path / "c.json", {"b": np.float32(0.5), "a": 1}, sort_keys=True)
    assert (tmp_path / "c.json").read_text() == '{\n  "a": 1,\n  "b": 0.5\n}\n'
    _io.atomic_write_text(tmp_path / "new" / "deeper" / "d.txt", "x")  # parents are created
    assert _names(tmp_path) == ["a.txt", "b.bin", "c.json", "new"]


def test_unserialisable_json_leaves_file_untouched(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("{}")
    with pytest.raises(TypeError):
        _io.atomic_write_json(target, {"x": object()})
    assert target.read_text() == "{}" and _names(tmp_path) == ["r.json"]


def test_directory_target_is_refused_untouched(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("k")
    with pytest.raises(IsADirectoryError, match="it is an existing directory"):
        _io.atomic_write_text(tmp_path / "d", "x")
    assert _names(tmp_path) == ["d"] and _names(tmp_path / "d") == ["keep"]


def test_unwritable_destination_names_the_target(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=rf"cannot write {tmp_path}/file/out.json"):
        _io.atomic_write_text(tmp_path / "file" / "out.json", "{}")  # parent is a file
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(PermissionError, match=rf"cannot write {ro}/a.txt"):
            _io.atomic_write_text(ro / "a.txt", "x")
    finally:
        os.chmod(ro, 0o755)


def test_durable_write_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    _io.atomic_write_text(tmp_path / "a", "x")
    assert synced == [False, True]  # the file before the rename, the folder after it
    synced.clear()
    _io.atomic_write_text(tmp_path / "a", "y", durable=False)
    assert synced == []
    _io.fsync_dir(tmp_path)
    assert synced == [True]


def test_temp_names_are_recognised(tmp_path):
    seen = []
    _io.atomic_write(tmp_path / "meta.json", lambda tmp: (seen.append(os.path.basename(tmp)),
                                                          open(tmp, "w").close()))
    assert _io.is_temp_name(seen[0]) and seen[0].startswith(".meta.json.")
    for name in ("meta.json", "notes.tmp", ".hidden", "data.bin", ".meta.json"):
        assert not _io.is_temp_name(name), name


def test_new_files_honour_the_umask(tmp_path):
    # the umask is read once at import: a fresh interpreter sets it and reloads the module
    code = textwrap.dedent("""
        import importlib, os, sys
        from hopfield import _io
        for umask in (0o022, 0o077, 0o002):
            os.umask(umask)
            importlib.reload(_io)
            _io.atomic_write_text(f"{sys.argv[1]}/{umask:o}.txt", "x")
            _io.atomic_write_bytes(f"{sys.argv[1]}/{umask:o}.bin", b"x")
    """)
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        for ext in ("txt", "bin"):
            assert stat.S_IMODE(os.stat(tmp_path / f"{umask:o}.{ext}").st_mode) == mode


def test_killed_writer_leaves_old_or_new_content_never_a_mix(tmp_path):
    """SIGKILL a process that rewrites a 2 MB file in a loop: the file is always whole."""
    target, size = tmp_path / "f.bin", 2 * 2**20
    code = textwrap.dedent(f"""
        import sys
        from hopfield import _io
        print("ready", flush=True)
        i = 0
        while True:
            _io.atomic_write_bytes(sys.argv[1], bytes([97 + i % 2]) * {size})
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    data = target.read_bytes()
    assert len(data) == size and data in (b"a" * size, b"b" * size)
    leftovers = [n for n in _names(tmp_path) if n != "f.bin"]
    assert all(_io.is_temp_name(n) for n in leftovers)  # at most the one being written


def test_savefig_is_atomic_and_closes(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    _io.atomic_savefig(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and not plt.fignum_exists(fig.number)
    assert _names(tmp_path) == ["p.png"]


def _finished(parent, files):
    import tempfile as tf

    tmp = tf.mkdtemp(prefix=".x.tmp-", dir=parent)
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    return tmp


def test_replace_dir_new_empty_and_owned(tmp_path):
    owned = ("config.json", "weights", "parts")
    target = tmp_path / "model"
    _io.replace_dir(_finished(tmp_path, {"config.json": "1"}), target, owned=owned)
    assert _names(target) == ["config.json"] and _names(tmp_path) == ["model"]
    _io.replace_dir(_finished(tmp_path, {"config.json": "2", "parts/a": "a"}), target, owned=owned)
    assert (target / "config.json").read_text() == "2" and (target / "parts" / "a").exists()
    assert _names(tmp_path) == ["model"]  # no aside folder left
    (tmp_path / "empty").mkdir()
    _io.replace_dir(_finished(tmp_path, {"config.json": "3"}), tmp_path / "empty", owned=owned)
    assert (tmp_path / "empty" / "config.json").read_text() == "3"


def test_replace_dir_refuses_foreign_entries_untouched(tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "config.json").write_text("old")
    (target / "my_notes.txt").write_text("precious")
    tmp = _finished(tmp_path, {"config.json": "new"})
    with pytest.raises(FileExistsError, match=r"cannot replace .*models: it holds files this "
                                              r"library did not write \(my_notes.txt\)"):
        _io.replace_dir(tmp, target, owned=("config.json",))
    assert _names(target) == ["config.json", "my_notes.txt"]
    assert (target / "config.json").read_text() == "old" and os.path.isdir(tmp)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="it is an existing file"):
        _io.replace_dir(tmp, tmp_path / "file", owned=())


def test_replace_dir_failed_rename_restores_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("old")
    tmp = _finished(tmp_path, {"config.json": "new"})
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the rename of the new folder into place
            raise OSError(5, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="I/O error"):
        _io.replace_dir(tmp, target, owned=("config.json",))
    monkeypatch.undo()
    assert (target / "config.json").read_text() == "old"
    assert sorted(_names(tmp_path)) == sorted(["model", os.path.basename(tmp)])


def test_replace_dir_keeps_files_that_appear_meanwhile(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("old")
    tmp = _finished(tmp_path, {"config.json": "new"})
    real = os.replace

    def sneaky(src, dst):  # a user drops a file into the old folder right as it is replaced
        real(src, dst)
        if str(dst).endswith("model") and ".old-" in str(dst):
            with open(os.path.join(dst, "late.txt"), "w") as f:
                f.write("keep me")

    monkeypatch.setattr(os, "replace", sneaky)
    with pytest.warns(RuntimeWarning, match="were kept in"):
        _io.replace_dir(tmp, target, owned=("config.json",))
    monkeypatch.undo()
    assert (target / "config.json").read_text() == "new"
    aside = [n for n in _names(tmp_path) if n.startswith(".model.old-")]
    assert len(aside) == 1
    assert (tmp_path / aside[0] / "model" / "late.txt").read_text() == "keep me"
