"""hopfield.repertoire data: simulation, encoding, DeepRC/AIRR loading, bad input, crash safety."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hopfield.repertoire import (
    Repertoire,
    load_repertoires,
    simulate_repertoires,
    write_repertoires,
)
from hopfield.repertoire.baselines import sequence_kmer_hits


@pytest.fixture(scope="module")
def sim():
    return simulate_repertoires(8, 500, 0.02, seed=3, count_mean=3.0)


# ----------------------------------------------------------------------------- simulation


def test_simulation_ground_truth(sim):
    assert len(sim) == 8 and sorted(np.unique(sim.y)) == [0, 1]
    for rep, wit, y in zip(sim.repertoires, sim.witness, sim.y):
        assert len(rep) == 500 and wit.shape == (500,)
        assert wit.sum() == (10 if y else 0)  # exactly round(0.02 * 500) witnesses
        seqs = rep.sequences()
        assert all(s[0] == "C" and s[-1] in "FW" for s in seqs)
        assert all(10 <= len(s) <= 22 for s in seqs)
        hits = sequence_kmer_hits(rep, sim.motifs)
        assert hits[wit].all()  # no noise: every witness holds the motif exactly
        assert np.asarray(rep.counts).min() >= 1


def test_simulation_is_deterministic_and_seeded():
    a = simulate_repertoires(4, 50, 0.1, seed=0)
    b = simulate_repertoires(4, 50, 0.1, seed=0)
    c = simulate_repertoires(4, 50, 0.1, seed=1)
    assert all(x.sequences() == y.sequences() for x, y in zip(a.repertoires, b.repertoires))
    assert a.repertoires[0].sequences() != c.repertoires[0].sequences()


def test_simulation_noise_and_multi_motif():
    ds = simulate_repertoires(6, 300, 0.1, motifs=["ASDF", "GHIK"], seed=0,
                              substitution_rate=0.5, gap_rate=1.0)
    pos = int(np.argmax(ds.y))
    hits = sequence_kmer_hits(ds.repertoires[pos], ds.motifs)
    # heavy noise: many witnesses no longer hold a motif exactly
    assert hits[ds.witness[pos]].mean() < 0.9
    assert ds.motifs == ["ASDF", "GHIK"]


@pytest.mark.parametrize("kw, msg", [
    ({"n_repertoires": 1}, "n_repertoires"),
    ({"witness_rate": 0.0}, "witness_rate"),
    ({"witness_rate": 1.5}, "witness_rate"),
    ({"motifs": ["AB1"]}, r"motifs\[0\]"),
    ({"motifs": []}, "motifs"),
    ({"substitution_rate": -0.1}, "substitution_rate"),
    ({"n_sequences": 0}, "n_sequences"),
])
def test_simulation_bad_arguments(kw, msg):
    args = {"n_repertoires": 4, "n_sequences": 10, "witness_rate": 0.1, **kw}
    with pytest.raises(ValueError, match=msg):
        simulate_repertoires(**args)


# ----------------------------------------------------------------------------- encoding


def test_repertoire_from_sequences_roundtrip():
    rep = Repertoire.from_sequences(["CASSF", "CAW", "cassylf"], [3, 1, 2])
    assert rep.sequences() == ["CASSF", "CAW", "CASSYLF"]
    m = rep.encode(max_length=8)
    assert m.shape == (3, 8) and m.dtype == np.uint8 and (m[1, 3:] == 0).all()
    assert rep.encode(1, 2).shape == (1, 3)
    with pytest.raises(ValueError, match="max_length=4"):
        rep.encode(max_length=4)


@pytest.mark.parametrize("seqs, msg", [
    (["CASS", ""], r"sequences\[1\] is an empty sequence"),
    (["CAS1F"], r"'1', not one of the 20 amino acids .*1 sequence"),
    (["C" * 300], "more than the maximum 255"),
    ([], "empty"),
])
def test_repertoire_bad_sequences(seqs, msg):
    with pytest.raises(ValueError, match=msg):
        Repertoire.from_sequences(seqs)


def test_unknown_token_and_bad_counts():
    rep = Repertoire.from_sequences(["CAXSF", "CAB*F"], unknown="token")
    assert rep.sequences() == ["CAXSF", "CAXXF"]
    with pytest.raises(ValueError, match="non-negative integers"):
        Repertoire.from_sequences(["CASF"], [1.5])
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        Repertoire.from_sequences(["CASF"], [-1])
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        Repertoire.from_sequences(["CASF"], [1, 2])


# ----------------------------------------------------------------------------- loading


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a.repertoires, b.repertoires):
        assert np.array_equal(ra.encode(), rb.encode())
        assert np.array_equal(np.asarray(ra.counts), np.asarray(rb.counts))


@pytest.mark.parametrize("fmt", ["deeprc", "airr"])
def test_write_then_load_roundtrip(sim, tmp_path, fmt):
    path = write_repertoires(sim, tmp_path / "ds", format=fmt)
    head = (path / "repertoires" / f"{sim.ids[0]}.tsv").read_text().splitlines()[0]
    assert head == ("amino_acid\ttemplates" if fmt == "deeprc" else "junction_aa\tduplicate_count")
    ds = load_repertoires(path)
    _same(sim, ds)
    assert np.array_equal(ds.y, sim.y) and ds.ids == sim.ids
    assert isinstance(ds.repertoires[0].codes, np.memmap)  # memory-mapped, not decoded in RAM
    meta = json.loads((path / ".hopfield-encoded" / "meta.json").read_text())
    assert meta["sizes"]["codes"] == sum(int(np.sum(r.lengths)) for r in sim.repertoires)
    # second call reuses the store; touching a source file triggers a rebuild
    mtime = (path / ".hopfield-encoded" / "meta.json").stat().st_mtime_ns
    load_repertoires(path)
    assert (path / ".hopfield-encoded" / "meta.json").stat().st_mtime_ns == mtime
    f = path / "repertoires" / f"{sim.ids[1]}.tsv"
    f.write_text(f.read_text() + "CASSQF\t1\n")
    ds2 = load_repertoires(path)
    assert len(ds2.repertoires[1]) == len(sim.repertoires[1]) + 1


def test_write_refuses_foreign_directory(sim, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        write_repertoires(sim, tmp_path / "mine")
    with pytest.raises(ValueError, match="not written by write_repertoires"):
        write_repertoires(sim, tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"


def _layout(tmp_path, meta, files, name="metadata.tsv"):
    root = tmp_path / "data"
    (root / "repertoires").mkdir(parents=True)
    (root / name).write_text(meta)
    for fname, text in files.items():
        (root / "repertoires" / fname).write_text(text)
    return root


GOOD = "amino_acid\ttemplates\nCASSLF\t3\nCASSQYF\t1\n"


@pytest.mark.parametrize("meta, files, msg", [
    ("ID\tlabel\na\t1\nb\t0\n", {"a.tsv": GOOD}, r"metadata.tsv line 3: repertoire 'b' has no file"),
    ("ID\tlabel\na\t1\n", {"a.tsv": GOOD, "b.tsv": GOOD}, r"b.tsv is a repertoire file without a row"),
    ("ID\tlabel\na\t1\nb\tyes\n", {"a.tsv": GOOD, "b.tsv": GOOD}, r"line 3: target column 'label' mixes types"),
    ("ID\tlabel\na\t1\nb\t\n", {"a.tsv": GOOD, "b.tsv": GOOD}, r"line 3: empty value in target"),
    ("ID\tlabel\na\t1\na\t0\n", {"a.tsv": GOOD}, r"line 3: repertoire 'a' is listed twice"),
    ("name\tlabel\na\t1\n", {"a.tsv": GOOD}, r"line 1: no ID column"),
    ("ID\tlabel\tage\na\t1\t3\n", {"a.tsv": GOOD}, r"cannot tell the target column"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASSLF\t3\nCAS1F\t1\n"},
     r"a.tsv line 3: 'CAS1F' contains '1'"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASSLF\t3\n\t1\n"},
     r"a.tsv line 3: empty sequence"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASSLF\t-2\n"},
     r"a.tsv line 2: count '-2'"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASSLF\t2.5\n"},
     r"a.tsv line 2: count '2.5' .* not a non-negative integer"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASSLF\tx\n"},
     r"a.tsv line 2: count 'x'"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\n"}, r"a.tsv holds no \(valid\) sequence"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\n" + "C" * 70 + "\t1\n"},
     r"a.tsv line 2: sequence of 70 amino acids is longer than max_length=64"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "amino_acid\ttemplates\nCASF\t1\t9\n"},
     r"a.tsv line 2: expected 2 tab-separated fields, found 3"),
    ("ID\tlabel\na\t1\n", {"a.tsv": "sequence\tcount\nCASF\t1\n"}, r"'amino_acid' \(DeepRC\)"),
])
def test_bad_input_names_file_and_line(tmp_path, meta, files, msg):
    root = _layout(tmp_path, meta, files)
    with pytest.raises(ValueError, match=msg):
        load_repertoires(root)
    assert not (root / ".hopfield-encoded").exists()  # nothing half-written
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]


def test_skip_and_unknown_token_options(tmp_path):
    text = "amino_acid\ttemplates\nCASSLF\t3\nCAS*F\t1\n\t1\nCASQF\t2\n"
    root = _layout(tmp_path, "ID\tstatus\na\tpos\nb\tneg\n", {"a.tsv": text, "b.tsv": GOOD})
    with pytest.warns(UserWarning, match=r"1 empty, 1 non-amino-acid sequence\(s\) skipped"):
        ds = load_repertoires(root, on_invalid="skip")
    assert ds.repertoires[0].sequences() == ["CASSLF", "CASQF"]
    assert ds.repertoires[0].counts.tolist() == [3, 2]
    assert ds.y.tolist() == ["pos", "neg"]
    with pytest.warns(UserWarning, match="1 unknown token"):
        ds = load_repertoires(root, on_invalid="skip", unknown="token",
                              cache_dir=tmp_path / "other")
    assert ds.repertoires[0].sequences() == ["CASSLF", "CASXF", "CASQF"]


def test_airr_metadata_csv_and_counts_off(tmp_path):
    root = tmp_path / "airr"
    root.mkdir()
    (root / "metadata.csv").write_text("repertoire_id,disease\nr1,true\nr2,false\n")
    for rid in ("r1", "r2"):
        (root / f"{rid}.tsv").write_text("sequence_id\tjunction_aa\tduplicate_count\n"
                                         "s1\tCASSLGF\t\ns2\tCASRW\t4\n")
    with pytest.raises(ValueError, match=r"r1.tsv line 2: count ''"):
        load_repertoires(root)
    ds = load_repertoires(root, counts=False)
    assert ds.y.tolist() == [1, 0] and ds.repertoires[1].sequences() == ["CASSLGF", "CASRW"]
    assert ds.repertoires[0].counts.tolist() == [1, 1]


def test_corrupt_store_is_detected(sim, tmp_path):
    path = write_repertoires(sim.subset([0, 1]), tmp_path / "ds")
    load_repertoires(path)
    codes = path / ".hopfield-encoded" / "codes.bin"
    data = bytearray(codes.read_bytes())
    data[5] ^= 0xFF
    codes.write_bytes(data)
    os.utime(codes)
    with pytest.raises(ValueError, match="codes.bin is corrupt"):
        load_repertoires(path)


def test_interrupted_conversion_leaves_nothing(tmp_path):
    """Ctrl-C (SIGINT) in the middle of a conversion: no dataset, no temporary directory."""
    big = simulate_repertoires(3, 5_000, 0.01, seed=0)
    path = write_repertoires(big, tmp_path / "big")
    # a process started in the background (`cmd &` without job control) inherits SIGINT as
    # ignored, and Python then installs no KeyboardInterrupt handler: restore the terminal's
    script = textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import hopfield.repertoire.io as rio
        orig = rio._convert_file
        def slow(*a, **k):
            out = orig(*a, **k)
            print("FILE", flush=True)
            import time; time.sleep(30)
            return out
        rio._convert_file = slow
        rio.load_repertoires({str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "FILE"  # mid-conversion: one file done
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (path / ".hopfield-encoded").exists()
    assert not [p.name for p in path.iterdir() if re.search(r"\.tmp-", p.name)]
    ds = load_repertoires(path)  # a clean restart works
    _same(big, ds)


def test_overwrite_replaces_only_own_files(sim, tmp_path):
    path = write_repertoires(sim.subset([0, 1]), tmp_path / "ds")
    load_repertoires(path)  # adds the converted store inside the dataset folder
    write_repertoires(sim.subset([2, 3]), path, overwrite=True)  # all entries are ours
    assert load_repertoires(path).ids == [sim.ids[2], sim.ids[3]]
    (path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        write_repertoires(sim.subset([0, 1]), path, overwrite=True)
    assert (path / "notes.txt").read_text() == "mine"
    assert load_repertoires(path).ids == [sim.ids[2], sim.ids[3]]  # unchanged
