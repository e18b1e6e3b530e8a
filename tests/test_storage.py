"""PatternStore: round trip, append, chunked reads, crash safety, truncation and corruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hopfield
from hopfield import storage
from hopfield.storage import DATA_FILE, META_FILE, PatternStore


def _rows(n, d=8, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def test_lazy_reexport():
    assert hopfield.PatternStore is PatternStore


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_round_trip_and_properties(tmp_path, dtype):
    x = _rows(37, 5, dtype=np.float64)
    with PatternStore.create(tmp_path / "s", dim=5, dtype=dtype) as s:
        s.append(x[:10]).append(torch.from_numpy(x[10:]))
    r = PatternStore.open(tmp_path / "s")
    assert len(r) == 37 and r.dim == 5 and r.shape == (37, 5)
    assert r.dtype == getattr(torch, dtype)
    expected = torch.from_numpy(x.astype(dtype))
    assert torch.equal(r[:], expected)
    assert torch.equal(r[3:9], expected[3:9])
    assert torch.equal(r[-1], expected[-1])
    assert torch.equal(r[::3], expected[::3])
    assert torch.equal(r[np.array([5, 0, 36])], expected[[5, 0, 36]])
    assert torch.equal(r[torch.tensor([[1, 2], [3, 4]])], expected[torch.tensor([[1, 2], [3, 4]])])
    assert r[5:5].shape == (0, 5)
    r.close()
    assert "closed" in repr(r)
    with pytest.raises(ValueError, match="closed"):
        r[0]


@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6), chunk=st.integers(1, 50))
def test_appends_then_chunks_cover_everything_in_order(tmp_path_factory, sizes, chunk):
    path = tmp_path_factory.mktemp("s")
    x = _rows(sum(sizes), 3, seed=len(sizes))
    s = PatternStore.create(path / "s", dim=3)
    at = 0
    for n in sizes:
        s.append(x[at:at + n])
        at += n
    s.close()
    r = PatternStore.open(path / "s", verify=True)
    starts, parts = zip(*r.iter_chunks(chunk)) if len(r) else ((), ())
    assert list(starts) == list(range(0, len(x), chunk))
    assert all(p.shape[0] <= chunk for p in parts)
    got = torch.cat(parts) if parts else torch.empty(0, 3)
    assert torch.equal(got, torch.from_numpy(x))


def test_checksums_span_blocks_and_detect_corruption(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_BLOCK_BYTES", 4 * 4 * 10)  # 10 rows of 4 float32 per block
    s = PatternStore.create(tmp_path / "s", dim=4)
    for n in (3, 15, 1, 22):  # appends straddle block boundaries
        s.append(_rows(n, 4, seed=n))
    s.close()
    meta = json.loads((tmp_path / "s" / META_FILE).read_text())
    assert meta["block_rows"] == 10 and len(meta["crc32"]) == 5
    PatternStore.open(tmp_path / "s", verify=True)  # consistent
    raw = bytearray((tmp_path / "s" / DATA_FILE).read_bytes())
    raw[4 * 4 * 25 + 2] ^= 0xFF  # flip a byte in row 25 (block 2)
    (tmp_path / "s" / DATA_FILE).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"data\.bin is corrupt: checksum of rows \[20, 30\)"):
        PatternStore.open(tmp_path / "s")  # small store: verified at open by default
    r = PatternStore.open(tmp_path / "s", verify=False)  # sizes only
    with pytest.raises(ValueError, match="corrupt"):
        r.verify()


def test_truncated_data_file_gives_clear_error(tmp_path):
    s = PatternStore.create(tmp_path / "s", dim=8)
    s.append(_rows(100))
    s.close()
    data = tmp_path / "s" / DATA_FILE
    with open(data, "r+b") as f:
        f.truncate(100 * 32 - 5)
    with pytest.raises(ValueError, match=r"data\.bin is truncated: expected at least 3200 bytes "
                                         r"\(100 x 8 float32\), found 3195"):
        PatternStore.open(tmp_path / "s")
    os.remove(data)
    with pytest.raises(ValueError, match=r"data\.bin is missing"):
        PatternStore.open(tmp_path / "s")


def test_truncation_after_open_is_caught_while_reading(tmp_path):
    s = PatternStore.create(tmp_path / "s", dim=8)
    s.append(_rows(100))
    r = PatternStore.open(tmp_path / "s")
    with open(tmp_path / "s" / DATA_FILE, "r+b") as f:
        f.truncate(50 * 32)
    with pytest.raises(ValueError, match="truncated"):
        list(r.iter_chunks(30))
    with pytest.raises(ValueError, match="truncated"):
        r[40:60]


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"format": "other"}),
                                 json.dumps({"format": "hopfield.PatternStore", "version": 1,
                                             "dim": 4, "dtype": "float32", "count": 30,
                                             "block_rows": 10, "crc32": [1]})])
def test_corrupt_metadata_gives_clear_error(tmp_path, bad):
    PatternStore.create(tmp_path / "s", dim=4).close()
    (tmp_path / "s" / META_FILE).write_text(bad)
    with pytest.raises(ValueError, match=r"meta\.json"):
        PatternStore.open(tmp_path / "s")


def test_interrupted_append_keeps_previous_version(tmp_path, monkeypatch):
    s = PatternStore.create(tmp_path / "s", dim=8)
    old = _rows(20)
    s.append(old)

    def crash(*a, **k):
        raise KeyboardInterrupt("simulated crash between data write and metadata commit")

    monkeypatch.setattr(storage, "_write_json_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        s.append(_rows(7, seed=1))
    monkeypatch.undo()
    assert (tmp_path / "s" / DATA_FILE).stat().st_size == 27 * 32  # new bytes reached the disk
    r = PatternStore.open(tmp_path / "s", verify=True)
    assert len(r) == 20 and torch.equal(r[:], torch.from_numpy(old))
    # the next append overwrites the orphaned bytes and stays consistent
    s.close()
    w = PatternStore.open(tmp_path / "s", mode="r+")
    w.append(_rows(3, seed=2))
    w.close()
    r = PatternStore.open(tmp_path / "s", verify=True)
    assert torch.equal(r[:], torch.from_numpy(np.concatenate([old, _rows(3, seed=2)])))


def test_killed_writer_process_leaves_store_readable(tmp_path):
    """A real crash: SIGKILL a process in the middle of a large append loop."""
    path = tmp_path / "s"
    PatternStore.create(path, dim=64).append(_rows(10, 64)).close()
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from hopfield.storage import PatternStore
        s = PatternStore.open({str(path)!r}, mode="r+")
        rng = np.random.default_rng(1)
        print("ready", flush=True)
        while True:
            s.append(rng.standard_normal((4096, 64)).astype(np.float32))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    import time
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    r = PatternStore.open(path, verify=True)
    n = len(r)
    assert n >= 10 and (n - 10) % 4096 == 0  # only whole committed appends are visible
    assert torch.equal(r[:10], torch.from_numpy(_rows(10, 64)))


def test_append_rejects_bad_input_without_writing(tmp_path):
    s = PatternStore.create(tmp_path / "s", dim=4)
    s.append(_rows(5, 4))
    bad = _rows(3, 4)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="patterns must be finite"):
        s.append(bad)
    with pytest.raises(ValueError, match="patterns must be finite in the store's dtype float16, "
                                         "got 1 value"):
        PatternStore.create(tmp_path / "h", dim=1, dtype="float16").append(np.array([[1e6]]))
    with pytest.raises(ValueError, match=r"patterns must have shape \(M, 4\), got \(3, 5\)"):
        s.append(_rows(3, 5))
    with pytest.raises(TypeError, match="patterns must be a numpy array or a torch tensor"):
        s.append([[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(TypeError, match="patterns must be real numbers"):
        s.append(torch.ones(2, 4, dtype=torch.bool))
    assert len(s) == 5 and (tmp_path / "s" / DATA_FILE).stat().st_size == 5 * 16


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be one of \['float16', 'float32', "
                                         r"'float64'\], got 'int8'"):
        PatternStore.create(tmp_path / "a", dim=4, dtype="int8")
    with pytest.raises(ValueError, match="dim must be >= 1, got 0"):
        PatternStore.create(tmp_path / "a", dim=0)
    with pytest.raises(TypeError, match="dim must be an int"):
        PatternStore.create(tmp_path / "a", dim=4.0)
    PatternStore.create(tmp_path / "a", dim=4).close()
    with pytest.raises(FileExistsError, match="already holds a PatternStore"):
        PatternStore.create(tmp_path / "a", dim=4)
    PatternStore.create(tmp_path / "a", dim=3, overwrite=True).close()
    with pytest.raises(ValueError, match="mode must be 'r' or 'r\\+', got 'w'"):
        PatternStore.open(tmp_path / "a", mode="w")
    with pytest.raises(FileNotFoundError, match="no PatternStore"):
        PatternStore.open(tmp_path / "missing")
    r = PatternStore.open(tmp_path / "a")
    with pytest.raises(ValueError, match="read-only"):
        r.append(_rows(1, 3))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        next(r.iter_chunks(0))
    with pytest.raises(IndexError, match="out of range"):
        r[0]
    with pytest.raises(TypeError, match="index must be"):
        r[np.array([0.5])]


def test_single_writer_lock(tmp_path):
    w = PatternStore.create(tmp_path / "s", dim=2)
    with pytest.raises(ValueError, match="already open for appending"):
        PatternStore.open(tmp_path / "s", mode="r+")
    PatternStore.open(tmp_path / "s").close()  # readers are fine
    w.close()
    PatternStore.open(tmp_path / "s", mode="r+").close()


def test_reader_keeps_its_snapshot_while_writer_appends(tmp_path):
    w = PatternStore.create(tmp_path / "s", dim=2)
    w.append(_rows(4, 2))
    r = PatternStore.open(tmp_path / "s")
    w.append(_rows(6, 2, seed=1))
    assert len(r) == 4 and torch.equal(r[:], torch.from_numpy(_rows(4, 2)))
    assert len(PatternStore.open(tmp_path / "s")) == 10


@pytest.mark.parametrize("dtype,expected", [(np.float16, torch.float16),
                                            (np.dtype("float64"), torch.float64),
                                            (torch.float32, torch.float32),
                                            ("float32", torch.float32)])
def test_dtype_may_be_given_as_numpy_torch_or_name(tmp_path, dtype, expected):
    # numpy dtypes used to be rejected ("got \"<class 'numpy.float16'>\"") while torch ones passed
    s = PatternStore.create(tmp_path / "s", dim=2, dtype=dtype)
    assert s.dtype == expected
    s.close()
    assert PatternStore.open(tmp_path / "s").dtype == expected
    with pytest.raises(ValueError, match=r"dtype must be one of .*got 'int8'"):
        PatternStore.create(tmp_path / "t", dim=2, dtype=np.int8)
