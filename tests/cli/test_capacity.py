"""``hopfield capacity --quick``: JSON numbers are consistent with the library and theory."""

import json
import math

import pytest

from hopfield.analysis.capacity import capacity_from_curve, theory_capacity
from hopfield.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap")
    code = main(["capacity", "--out", str(out), "--quick", "--queries", "4", "--seed", "1",
                 "--no-progress"])
    return code, out


def test_capacity_cli_outputs(run):
    code, out = run
    assert code == 0
    for name in ("capacity.png", "capacity_success.png", "theorem5.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    d = json.loads((out / "capacity.json").read_text())
    assert d["seed"] == 1 and d["quick"] is True
    kinds = {c["meta"]["kind"] for c in d["curves"]}
    assert kinds == {"hebbian", "storkey", "polynomial", "exponential", "modern"}
    for c in d["curves"]:
        assert c["capacity"] == capacity_from_curve(c["n_patterns"], c["success"])
        assert max(c["n_patterns"]) <= 64
        assert (c["corruption"], c["noise"]) in (("flip", 0.0), ("flip", 0.1), ("mask", 0.25))
        assert c["corruption"] == "flip" or c["meta"]["kind"] == "modern"
        beta = float(c["memory"].split("β=")[1]) if "β=" in c["memory"] else 1.0
        rho = c["noise"] if c["corruption"] == "flip" else 0.0
        want = theory_capacity(c["meta"]["kind"], c["dim"], noise=rho, beta=beta)
        got = c["meta"]["theory"]
        assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want)
    heb = [c for c in d["curves"] if c["memory"] == "hebbian" and c["dim"] == 32]
    assert heb[0]["meta"]["theory"] == pytest.approx(0.138 * 32)
    assert min(d["theorem5"]["bound_holds"]) == 1.0


def test_capacity_cli_bad_seed(tmp_path):
    assert main(["capacity", "--out", str(tmp_path), "--seed", "-1"]) != 0


def test_capacity_cli_from_json_not_ours_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "x.json"
    for text in ("not json", '{"curves": []}'):  # JSONDecodeError / KeyError before
        bad.write_text(text)
        assert main(["capacity", "--out", str(tmp_path / "o"), "--from-json", str(bad)]) == 2
        assert "Invalid value for '--from-json': must be a capacity.json" in capsys.readouterr().err
