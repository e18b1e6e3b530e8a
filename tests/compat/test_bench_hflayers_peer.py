"""``hopfield bench --peers hflayers``: the real-package path with a fake importable ``hflayers``
(so the code that drives the real package runs), and the not-installed message.

The fake wraps ``hopfield.Hopfield`` behind hflayers' constructor names; what is checked is the
wiring (peer labels, the stand-in labelled as such in every row, the message and exit code),
not speed.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import replace

import pytest

from hopfield.bench import _core, _runner, peers, run
from hopfield.bench.report import render_markdown
from hopfield.cli import main

FAKE = textwrap.dedent('''
    """A fake hflayers for tests: hflayers' constructor names around hopfield.Hopfield."""
    import hopfield

    __version__ = "fake-0"
    calls = []


    class Hopfield(hopfield.Hopfield):
        def __init__(self, input_size, num_heads=1, update_steps_max=0, update_steps_eps=1e-4,
                     batch_first=True, **normalize):
            calls.append(dict(input_size=input_size, num_heads=num_heads,
                              update_steps_max=update_steps_max, **normalize))
            assert not any(normalize.values())
            super().__init__(input_size, num_heads=num_heads, max_steps=update_steps_max,
                             tol=update_steps_eps, batch_first=batch_first)
''')

TINY = {"B": 2, "L": 8, "N": 8, "D": 8, "H": 2}


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(_core.SUITES, "hflayers", "hopfield.bench.peers")


@pytest.fixture
def fake_hflayers(tmp_path, monkeypatch):
    (tmp_path / "hflayers.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hflayers", raising=False)
    yield
    sys.modules.pop("hflayers", None)


@pytest.fixture
def no_hflayers(monkeypatch):
    monkeypatch.setitem(sys.modules, "hflayers", None)  # import raises ImportError


def _tiny_cases():
    return [replace(c, config={**c.config, **TINY}) for c in peers.cases(quick=True)[:1]]


def _all_rows_labelled(md: str) -> None:
    rows = [ln for ln in md.splitlines() if ln.startswith("| self")]
    assert rows
    for ln in rows:
        if "materialis" in ln or "stand-in" in ln.lower():
            assert "stand-in (in-house, not hflayers)" in ln, ln


def test_real_package_runs_side_by_side(registered, fake_hflayers, tmp_path):
    report = run(["hflayers"], repeats=1, threads=1, in_process=True, progress=False,
                 cases=_tiny_cases(), workdir=tmp_path)
    rec = report["records"][0]
    for steps in peers.STEPS:
        for kind in (peers.REAL, peers.OURS, peers.STAND_IN):
            res = rec["time"][peers.peer_name(kind, steps)]
            assert res["status"] == "ok", res
        real = rec["time"][peers.peer_name(peers.REAL, steps)]
        assert real["info"]["implementation"] == "hflayers fake-0"
    assert {c["update_steps_max"] for c in sys.modules["hflayers"].calls} == set(peers.STEPS)
    values = {r["label"]: r["value"] for r in rec["ratios"]}
    assert values[f"time {peers.peer_name(peers.OURS, 3)} / {peers.peer_name(peers.REAL, 3)}"] > 0
    _all_rows_labelled(render_markdown(report))


def test_without_hflayers_the_real_peer_is_skipped_with_the_install_command(
        registered, no_hflayers, tmp_path):
    assert "pip install git+https://github.com/ml-jku/hopfield-layers" in \
        peers.missing_peer("hflayers")
    report = run(["hflayers"], repeats=1, threads=1, in_process=True, progress=False,
                 cases=_tiny_cases(), workdir=tmp_path)
    rec = report["records"][0]
    status = rec["time"][peers.peer_name(peers.REAL, 0)]["status"]
    assert status.startswith("skipped: hflayers is not importable") and peers.INSTALL in status
    assert rec["time"][peers.peer_name(peers.STAND_IN, 0)]["status"] == "ok"
    md = render_markdown(report)
    _all_rows_labelled(md)
    with pytest.raises(ValueError, match="peer must be one of hflayers, got 'faiss'"):
        peers.missing_peer("faiss")


def test_cli_peers_hflayers(registered, fake_hflayers, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_runner, "collect_cases", lambda names, quick: _tiny_cases())
    monkeypatch.setattr(_runner, "spawn", lambda spec, **kw: _runner.run_spec(spec))
    assert main(["bench", "--peers", "hflayers", "--repeats", "1", "--threads", "1",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "latest.md").read_text()
    assert "hflayers (real package), steps=3" in md and "--peers hflayers" in md
    _all_rows_labelled(md)


def test_cli_peers_hflayers_not_installed(registered, no_hflayers, tmp_path, capsys):
    code = main(["bench", "--peers", "hflayers", "--no-progress", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3
    assert "not importable" in err and peers.INSTALL in err
    assert not (tmp_path / "latest.md").exists()  # nothing ran, nothing written
    assert main(["bench", "--peers", "nosuch", "--out", str(tmp_path)]) == 2
    assert "must be among hflayers" in capsys.readouterr().err
