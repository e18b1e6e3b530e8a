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

    monkeypatch.setattr(storage, "_write_meta", crash)
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
    PatternStore.open(path, mode="r+").append(_rows(1, 64)).close()  # the kill freed the lock
    assert len(PatternStore.open(path, verify=True)) == n + 1


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
        s.append(torch.ones(2, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="patterns must be a dense tensor with data"):
        s.append(torch.ones(2, 4, device="meta"))
    with pytest.raises(TypeError, match="patterns must be a dense tensor with data"):
        s.append(torch.ones(2, 4).to_sparse())
    with pytest.raises(TypeError, match="got a masked array"):
        s.append(np.ma.masked_array(np.ones((1, 4)), mask=[[1, 0, 0, 0]]))
    with pytest.raises(TypeError, match="patterns must be a numeric array, got dtype datetime64"):
        s.append(np.ones((1, 4), "datetime64[s]"))
    assert len(s) == 5 and (tmp_path / "s" / DATA_FILE).stat().st_size == 5 * 16
    # bool rows are 0/1 whether numpy or torch (as ModernHopfield.store takes them)
    s.append(torch.tensor([[True, False, True, False]])).append(np.array([[False, True] * 2]))
    assert s[5:].tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]


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


def test_reader_keeps_its_rows_when_the_store_is_replaced(tmp_path):
    """create(overwrite=True) puts a new data.bin in place; an open reader keeps reading the
    file it opened (never rows of the new store under its old row count)"""
    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(50, 4)).close()
    r = PatternStore.open(path)
    w = PatternStore.create(path, dim=4, overwrite=True)
    w.append(_rows(60, 4, seed=9))
    assert torch.equal(r[:], torch.from_numpy(_rows(50, 4)))
    assert torch.equal(torch.cat([c for _, c in r.iter_chunks(7)]), torch.from_numpy(_rows(50, 4)))
    assert torch.equal(r[np.array([49, 0])], torch.from_numpy(_rows(50, 4)[[49, 0]]))
    r.verify()
    assert torch.equal(PatternStore.open(path)[:], torch.from_numpy(_rows(60, 4, seed=9)))
    r.close()
    w.close()


def test_threads_read_one_handle_at_once(tmp_path):
    """Reads have no shared file position (os.preadv): a prefetch thread, the main thread and
    forked DataLoader-style workers can read through one handle."""
    import threading

    x = _rows(3000, 8)
    PatternStore.create(tmp_path / "s", dim=8).append(x).close()
    r = PatternStore.open(tmp_path / "s")
    errors = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            a = int(rng.integers(0, 2990))
            if not np.array_equal(r[a:a + 10].numpy(), x[a:a + 10]):
                errors.append(a)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


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


# ---------------------------------------------------------------------------- concurrency (issue 8)
_WRITER = textwrap.dedent("""
    import os, sys, time, numpy as np
    from hopfield.storage import PatternStore
    path, wid, n_iter, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):  # start both writers together
        time.sleep(0.001)
    for it in range(n_iter):
        while True:
            try:
                s = PatternStore.open(path, mode="r+", verify=False)
                break
            except ValueError as e:  # another writer holds the lock: retry
                assert "already open for appending" in str(e), e
                time.sleep(0)  # retry at once: the tighter the loop, the likelier the old race
        rows = np.array([[wid, it, j, wid * 1000 + it * 10 + j] for j in range(3)], np.float32)
        s.append(rows)
        s.close()
    print("done", flush=True)
""")


def test_concurrent_writer_processes_never_lose_or_overwrite_a_row(tmp_path):
    """Issue 8 item 2: open(r+) used to read meta.json before taking the lock, so a writer that
    waited for the lock appended at a stale row count over the other writer's committed rows."""
    path, go = tmp_path / "s", tmp_path / "go"
    PatternStore.create(path, dim=4).close()
    n_iter, writers = 20, (1, 2)  # before the fix: rows lost in 3 of 5 runs of 20-50 appends
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(w), str(n_iter),
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for w in writers]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == b"done", err.decode()[-2000:]
    r = PatternStore.open(path, verify=True)
    rows = r[:].numpy()
    assert len(r) == len(writers) * n_iter * 3
    batches = [tuple(rows[i, :2]) for i in range(0, len(rows), 3)]
    assert sorted(batches) == sorted((w, it) for w in writers for it in range(n_iter))
    for i in range(0, len(rows), 3):  # every batch is whole and in place
        w, it = rows[i, :2]
        assert (rows[i:i + 3, 3] == w * 1000 + it * 10 + np.arange(3)).all()


_HOLDER = textwrap.dedent("""
    import sys
    from hopfield.storage import PatternStore
    s = PatternStore.open(sys.argv[1], mode="r+")
    print("ready", flush=True)
    sys.stdin.readline()  # hold the writer lock until the parent says so
    s.append(__import__("numpy").ones((2, 4), "float32"))
    s.close()
    print("appended", flush=True)
""")


def test_create_overwrite_while_another_process_appends_leaves_store_untouched(tmp_path):
    """Issue 8 item 3: create(overwrite=True) emptied data.bin and meta.json before finding the
    lock taken. Now it locks first: the error leaves every byte as it was."""
    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(1000, 4)).close()
    before = {f: (path / f).read_bytes() for f in (DATA_FILE, META_FILE)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        with pytest.raises(ValueError, match="already open for appending by another writer"):
            PatternStore.create(path, dim=8, overwrite=True)
        assert {f: (path / f).read_bytes() for f in (DATA_FILE, META_FILE)} == before
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == b"appended"  # the holder's store still works
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    r = PatternStore.open(path, verify=True)
    assert len(r) == 1002 and torch.equal(r[:1000], torch.from_numpy(_rows(1000, 4)))
    PatternStore.create(path, dim=8, overwrite=True).close()  # lock free: now it replaces
    assert PatternStore.open(path).shape == (0, 8)


def test_open_for_appending_reads_the_count_after_taking_the_lock(tmp_path, monkeypatch):
    """The exact interleaving of the lost appends, made deterministic: another writer appends
    and closes just before this writer gets the lock. The count must include its rows."""
    path = tmp_path / "s"
    PatternStore.create(path, dim=2).append(_rows(3, 2)).close()
    real, raced = storage._acquire_lock, []

    def racing(p):
        if not raced:
            raced.append(1)
            PatternStore.open(p, mode="r+").append(_rows(4, 2, seed=1)).close()
        return real(p)

    monkeypatch.setattr(storage, "_acquire_lock", racing)
    w = PatternStore.open(path, mode="r+")
    assert raced and len(w) == 7
    w.append(_rows(5, 2, seed=2)).close()
    want = np.concatenate([_rows(3, 2), _rows(4, 2, seed=1), _rows(5, 2, seed=2)])
    assert torch.equal(PatternStore.open(path, verify=True)[:], torch.from_numpy(want))


def test_append_rereads_count_under_the_lock(tmp_path):
    """A writer handle appends after the last committed row even if meta.json moved on."""
    w = PatternStore.create(tmp_path / "s", dim=2)
    w.append(_rows(3, 2))
    # another handle committed rows meanwhile (simulated: write its metadata by hand)
    other = PatternStore(tmp_path / "s", dict(w._meta), "r+")
    other.append(_rows(4, 2, seed=1))
    w.append(_rows(5, 2, seed=2))
    assert len(w) == 12
    got = PatternStore.open(tmp_path / "s", verify=True)[:]
    want = np.concatenate([_rows(3, 2), _rows(4, 2, seed=1), _rows(5, 2, seed=2)])
    assert torch.equal(got, torch.from_numpy(want))
    # a store replaced under a writer (different dim) is refused, not silently mixed
    hack = PatternStore(tmp_path / "s", dict(w._meta, dim=3), "r+")
    with pytest.raises(ValueError, match="was replaced while open for appending"):
        hack.append(_rows(1, 3))


def test_threads_sharing_one_writer_handle_keep_every_row(tmp_path):
    import threading

    s = PatternStore.create(tmp_path / "s", dim=2)
    def work(t):
        for i in range(25):
            s.append(np.array([[t, i]], np.float32))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = PatternStore.open(tmp_path / "s", verify=True)[:].numpy()
    assert sorted(map(tuple, rows)) == [(t, i) for t in range(4) for i in range(25)]


def test_read_only_folder_gives_a_clear_error_for_appending(tmp_path):
    PatternStore.create(tmp_path / "s", dim=2).close()
    os.remove(tmp_path / "s" / ".lock")
    os.chmod(tmp_path / "s", 0o555)
    try:
        if os.access(tmp_path / "s", os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(PermissionError, match=r"cannot open the PatternStore at .* for writing"):
            PatternStore.open(tmp_path / "s", mode="r+")
        assert len(PatternStore.open(tmp_path / "s")) == 0  # reading needs no write access
    finally:
        os.chmod(tmp_path / "s", 0o755)


# ---------------------------------------------------------------------------- folders (issue 8)
def test_create_never_touches_a_folder_with_foreign_files(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    (d / DATA_FILE).write_bytes(b"somebody else's data")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=rf"cannot create a PatternStore in {d}: the "
                                                  r"folder is not empty .*data\.bin, notes\.txt"):
            PatternStore.create(d, dim=4, overwrite=overwrite)
    assert sorted(os.listdir(d)) == [DATA_FILE, "notes.txt"]  # no lock file, nothing changed
    assert (d / DATA_FILE).read_bytes() == b"somebody else's data"
    # a store folder with an extra file is not replaced either
    PatternStore.create(tmp_path / "s", dim=4).append(_rows(5, 4)).close()
    (tmp_path / "s" / "README").write_text("x")
    with pytest.raises(FileExistsError, match="README"):
        PatternStore.create(tmp_path / "s", dim=4, overwrite=True)
    assert len(PatternStore.open(tmp_path / "s")) == 5
    # a meta.json that is not ours
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / META_FILE).write_text('{"format": "other"}')
    with pytest.raises(FileExistsError, match="not a hopfield.PatternStore's metadata"):
        PatternStore.create(tmp_path / "f", dim=4, overwrite=True)
    assert (tmp_path / "f" / META_FILE).read_text() == '{"format": "other"}'
    # a file where the folder should be
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="it is an existing file"):
        PatternStore.create(tmp_path / "file", dim=4)
    # an empty folder is fine, and so is a create that was interrupted before its commit
    (tmp_path / "empty").mkdir()
    PatternStore.create(tmp_path / "empty", dim=4).close()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / ".lock").touch()
    (tmp_path / "half" / DATA_FILE).touch()
    (tmp_path / "half" / ".data.bin.k2j_x9ab.tmp.bin").touch()  # a temp file of a killed create
    (tmp_path / "half" / ".meta.json.a1b2c3d4.tmp.json").touch()
    PatternStore.create(tmp_path / "half", dim=4).close()
    assert PatternStore.open(tmp_path / "half").shape == (0, 4)


def test_failed_overwrite_commit_leaves_store_untouched(tmp_path, monkeypatch):
    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(10, 4)).close()
    before = {f: (path / f).read_bytes() for f in (DATA_FILE, META_FILE)}

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "_write_meta", boom)
    with pytest.raises(OSError, match="No space left"):
        PatternStore.create(path, dim=4, overwrite=True)
    monkeypatch.undo()
    assert {f: (path / f).read_bytes() for f in (DATA_FILE, META_FILE)} == before
    PatternStore.open(path, mode="r+").close()  # the lock was released


def test_crash_between_overwrite_commit_and_new_data_file_gives_an_empty_store(tmp_path,
                                                                             monkeypatch):
    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(10, 4)).close()
    real, calls = storage._io.atomic_write_bytes, []

    def crash(*a, **k):  # the data file replacement that follows the metadata commit
        calls.append(1)
        raise KeyboardInterrupt("simulated crash after the commit")

    monkeypatch.setattr(storage._io, "atomic_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        PatternStore.create(path, dim=2, overwrite=True)
    monkeypatch.setattr(storage._io, "atomic_write_bytes", real)
    assert calls and (path / DATA_FILE).stat().st_size == 10 * 16  # old bytes still there
    r = PatternStore.open(path, verify=True)
    assert r.shape == (0, 2)  # ... but past the committed count: never read
    PatternStore.open(path, mode="r+").append(_rows(3, 2)).close()
    assert torch.equal(PatternStore.open(path, verify=True)[:], torch.from_numpy(_rows(3, 2)))


# ---------------------------------------------------------------------------- finiteness (item 7)
def _poison(path, row, dim=4, itemsize=4):
    with open(path / DATA_FILE, "r+b") as f:
        f.seek(row * dim * itemsize + itemsize)
        f.write(np.array([np.nan], dtype=np.float32).tobytes())


def test_non_finite_row_in_data_file_is_caught_by_every_read(tmp_path):
    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(100, 4)).close()
    _poison(path, 37)
    with pytest.raises(ValueError, match="checksum"):  # small store: verified at open
        PatternStore.open(path)
    r = PatternStore.open(path, verify=False)  # as for a store above VERIFY_ON_OPEN_BYTES
    with pytest.raises(ValueError, match=rf"{path / DATA_FILE} is corrupt: non-finite values in "
                                         r"rows \[30, 40\) \(first at row 37\) of the "
                                         rf"PatternStore at {path}"):
        list(r.iter_chunks(10))
    assert [s for s, _ in r.iter_chunks(10, stop=30)] == [0, 10, 20]  # rows before are fine
    with pytest.raises(ValueError, match="non-finite values in rows"):
        r[30:40]
    with pytest.raises(ValueError, match="non-finite values in rows"):
        r[37]
    with pytest.raises(ValueError, match="non-finite values in row 37 "):
        r[np.array([1, 37])]
    assert torch.isfinite(r[np.array([1, 36, 38])]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_blockwise_finiteness_check_equals_isfinite_all(monkeypatch, dtype):
    """storage._rows_finite checks in blocks of _CHECK_ROWS rows (no full-size temporary)."""
    monkeypatch.setattr(storage, "_CHECK_ROWS", 3)
    rows = np.ones((10, 4), dtype=dtype)
    assert storage._rows_finite(rows) and storage._rows_finite(rows[:0])
    assert storage._rows_finite(np.ones((2, 5, 4), dtype=dtype))
    assert storage._rows_finite(np.ones(4, dtype=np.int64))  # integers are always finite
    for row, bad in [(0, np.nan), (4, np.inf), (9, -np.inf)]:  # first, middle, last block
        poisoned = rows.copy()
        poisoned[row, 2] = bad
        assert not storage._rows_finite(poisoned), (row, bad)
        assert not storage._rows_finite(poisoned.reshape(5, 2, 4))


def test_streaming_retrieval_raises_on_a_corrupt_chunk(tmp_path):
    """Issue 8 item 7: retrieve ran 100 steps and returned NaN; top-k ranked the NaN row first."""
    from hopfield import ModernHopfield
    from hopfield.streaming import stream_topk, stream_update

    path = tmp_path / "s"
    PatternStore.create(path, dim=4).append(_rows(100, 4)).close()
    _poison(path, 70)
    r = PatternStore.open(path, verify=False)
    q = torch.randn(3, 4)
    match = rf"PatternStore at {path}"
    with pytest.raises(ValueError, match=r"rows \[64, 96\)"):
        stream_update(q, r, 1.0, chunk_size=32)
    with pytest.raises(ValueError, match=match):
        stream_topk(q, r, 1.0, k=2, chunk_size=32)
    mem = ModernHopfield(beta=1.0).store(r)
    with pytest.raises(ValueError, match=match):
        mem.retrieve(q)
    with pytest.raises(ValueError, match=match):
        mem.retrieve_topk(q, k=2)


# ---------------------------------------------------------------------------- bad inputs (item 14)
def _meta(**changes):
    m = {"format": "hopfield.PatternStore", "version": 1, "dim": 4, "dtype": "float32",
         "count": 0, "block_rows": 10, "crc32": []}
    m.update(changes)
    return m


@pytest.mark.parametrize("meta,match", [
    (_meta(dtype=["x"]), r"'dtype' must be one of \['float16', 'float32', 'float64'\], got \['x'\]"),
    (_meta(dtype="int8"), "'dtype' must be one of"),
    (_meta(dtype=None), "'dtype' must be one of"),
    (_meta(dim=True), "'dim' must be an integer >= 1, got True"),
    (_meta(dim=0), "'dim' must be an integer >= 1, got 0"),
    (_meta(dim=4.0), "'dim' must be an integer >= 1, got 4.0"),
    (_meta(dim="4"), "'dim' must be an integer >= 1"),
    (_meta(count=-1), "'count' must be an integer >= 0"),
    (_meta(count=[1]), "'count' must be an integer >= 0"),
    (_meta(block_rows=0), "'block_rows' must be an integer >= 1"),
    (_meta(block_rows={}), "'block_rows' must be an integer >= 1"),
    (_meta(crc32="abc"), "'crc32' must be a list of CRC-32 values"),
    (_meta(crc32=[1.5]), "'crc32' must be a list of CRC-32 values"),
    (_meta(count=5, crc32=[-1]), "'crc32' must be a list of CRC-32 values"),
    (_meta(count=5, crc32=[]), "5 rows in blocks of 10 need 1 checksums, found 0"),
    (_meta(version=True), "must describe a hopfield.PatternStore version 1"),
    (_meta(version=2), ("must describe a hopfield.PatternStore version 1, got format "
                        "'hopfield.PatternStore' version 2")),
    (_meta(format=["x"]), "must describe a hopfield.PatternStore"),
    ([1, 2], "expected a JSON object"),
    ("text", "expected a JSON object"),
    ({"format": "hopfield.PatternStore"}, r"missing \['version', 'dim'"),
])
def test_every_bad_meta_field_gives_a_clear_value_error(tmp_path, meta, match):
    PatternStore.create(tmp_path / "s", dim=4).close()
    (tmp_path / "s" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"meta\.json .*" + match):
        PatternStore.open(tmp_path / "s")
    with pytest.raises(ValueError, match=match):
        PatternStore.open(tmp_path / "s", mode="r+")


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"\xff\xfe{", b"", b"NaN"])
def test_unparsable_meta_gives_a_clear_value_error(tmp_path, raw):
    PatternStore.create(tmp_path / "s", dim=4).close()
    (tmp_path / "s" / META_FILE).write_bytes(raw)
    with pytest.raises(ValueError, match=r"meta\.json"):
        PatternStore.open(tmp_path / "s")


def test_odd_files_and_folders_give_clear_errors(tmp_path):
    PatternStore.create(tmp_path / "s", dim=4).close()
    os.remove(tmp_path / "s" / META_FILE)
    os.mkdir(tmp_path / "s" / META_FILE)
    with pytest.raises(ValueError, match=r"meta\.json is corrupt: it is a folder"):
        PatternStore.open(tmp_path / "s")
    with pytest.raises(ValueError, match=r"meta\.json is corrupt: it is a folder"):
        PatternStore.open(tmp_path / "s", mode="r+")
    PatternStore.create(tmp_path / "t", dim=4).close()
    os.remove(tmp_path / "t" / DATA_FILE)
    os.mkdir(tmp_path / "t" / DATA_FILE)
    with pytest.raises(ValueError, match=r"data\.bin is corrupt: it is a folder"):
        PatternStore.open(tmp_path / "t")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="it is a file, not a folder"):
        PatternStore.open(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="the folder does not exist"):
        PatternStore.open(tmp_path / "nope", mode="r+")
    assert not (tmp_path / "nope").exists()  # no lock file created for a missing store


def test_index_and_argument_errors_are_clear(tmp_path):
    s = PatternStore.create(tmp_path / "s", dim=4).append(_rows(10, 4))
    with pytest.raises(TypeError, match=r"takes one row index .*got the tuple \(0, 1\).*"
                                        r"store\[rows\]\[:, cols\]"):
        s[0, 1]
    with pytest.raises(TypeError, match="tuple"):
        s[1:3, 0]
    assert torch.equal(s[np.int64(2)][1], s[2:3][:, 1][0])  # the documented alternative
    for bad in (None, 1.5, "a", ..., [[1], [2, 3]], [1.0]):
        with pytest.raises(TypeError, match="index must be an int, a slice or an integer array"):
            s[bad]
    with pytest.raises(TypeError, match="boolean masks are not supported"):
        s[np.ones(10, bool)]
    with pytest.raises(TypeError, match="slice bounds must be ints or None"):
        s["a":]
    assert s[[1, 2]].shape == (2, 4) and s[torch.tensor(3)].shape == (4,)
    assert s[[]].shape == (0, 4) and s[np.array([[0, 1]])].shape == (1, 2, 4)
    with pytest.raises(TypeError, match="index must be a dense tensor with data"):
        s[torch.tensor([1], device="meta")]
    with pytest.raises(IndexError, match="out of range"):
        s[2**70]
    with pytest.raises(ValueError, match="start must be >= 0, got -5"):
        s.iter_chunks(start=-5)
    with pytest.raises(ValueError, match="stop must be >= 0, got -1"):
        s.iter_chunks(stop=-1)
    with pytest.raises(TypeError, match="start must be an int, got float"):
        s.iter_chunks(start=1.0)
    with pytest.raises(TypeError, match="stop must be an int, got bool"):
        s.iter_chunks(stop=True)
    assert [st for st, _ in s.iter_chunks(4, start=3, stop=100)] == [3, 7]
    assert list(s.iter_chunks(4, start=20)) == [] and list(s.iter_chunks(4, start=5, stop=2)) == []
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got NoneType"):
        PatternStore.open(None)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        PatternStore.create(3, dim=4)
    with pytest.raises(TypeError, match="verify must be a bool or None, got str"):
        PatternStore.open(tmp_path / "s", verify="no")
    with pytest.raises(ValueError, match="mode must be 'r' or 'r\\+', got None"):
        PatternStore.open(tmp_path / "s", mode=None)
    with pytest.raises(ValueError, match="dtype must be one of .*got None"):
        PatternStore.create(tmp_path / "n", dim=4, dtype=None)  # np.dtype(None) is float64
    with pytest.raises(TypeError, match="overwrite must be a bool, got int"):
        PatternStore.create(tmp_path / "n", dim=4, overwrite=1)
    assert not (tmp_path / "n").exists()
