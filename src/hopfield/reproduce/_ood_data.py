"""Data and encoders of the OOD benchmark (:mod:`hopfield.reproduce.ood`): the stdlib-docstring
paragraphs, MiniLM sentence features (cached), the auxiliary outlier patches, the digits / letters
base sets, and the small MLP whose penultimate features the detectors score (optionally trained
with Hopfield Boosting).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np

from .._io import atomic_write

STDLIB_MODULES = (
    "argparse", "asyncio", "bisect", "calendar", "codecs", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fnmatch", "fractions", "functools", "gettext", "glob", "gzip", "hashlib", "heapq",
    "hmac", "http.client", "http.server", "inspect", "io", "ipaddress", "itertools", "json",
    "locale", "logging", "mailbox", "mimetypes", "multiprocessing", "numbers", "operator",
    "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3", "ssl",
    "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tokenize", "traceback", "typing", "unittest", "urllib.parse", "urllib.request",
    "uuid", "warnings", "weakref", "xml.dom.minidom", "zipfile",
)


# ----------------------------------------------------------------------------- data


def stdlib_paragraphs(limit: int = 300, seed: int = 0) -> list[str]:
    """Prose paragraphs (150–1,200 characters) of the docstrings of Python's standard library
    modules in :data:`STDLIB_MODULES` and their public members; code examples, tables and
    signatures are skipped. Deterministic for a given Python version."""
    import importlib

    paras: set[str] = set()
    for name in STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # pragma: no cover - platform-specific modules
            continue
        objs = [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]
        for obj in objs:
            doc = inspect.getdoc(obj) if (inspect.ismodule(obj) or inspect.isclass(obj)
                                          or inspect.isroutine(obj)) else None
            if not doc:
                continue
            for p in re.split(r"\n\s*\n", doc):
                p = " ".join(p.split())
                if not 150 <= len(p) <= 1200 or ">>>" in p or "::" in p or "|" in p:
                    continue
                letters = sum(c.isalpha() or c.isspace() for c in p) / len(p)
                if letters < 0.85 or not p[0].isupper() or not p.endswith("."):
                    continue
                paras.add(p)
    out = sorted(paras)
    rng = np.random.default_rng(seed)
    return [out[i] for i in sorted(rng.permutation(len(out))[:limit])]


def _embed_texts(texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Mean-pooled MiniLM-L6 embeddings (the sentence-transformers recipe), (n, 384)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ..analysis.transformer import minilm_path

    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            enc = tok(texts[s:s + batch_size], padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
            h = model(**enc).last_hidden_state  # (B, T, 384)
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            out.append(((h * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out).astype(np.float64)


def _text_features(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    path = cache / "text_minilm.npz"
    if path.is_file():
        z = np.load(path)
        return z["ind"], z["ood"]
    from ..analysis.transformer import load_corpus

    ind, ood = _embed_texts(load_corpus()), _embed_texts(stdlib_paragraphs())
    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, ind=ind, ood=ood)

    atomic_write(path, save)
    return ind, ood


def _aux_patches(n: int, seed: int) -> np.ndarray:
    """``n`` 8×8 grey patches (0–16, like the digits) of scikit-learn's two sample photographs."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    imgs = [im.mean(-1) for im in load_sample_images().images]  # (427, 640) grey
    out = np.empty((n, 64))
    for k in range(n):
        im = imgs[k % 2]
        size = 8 * int(rng.integers(2, 6))  # crops of 16–40 px, block-averaged to 8×8
        r, c = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
        p = im[r:r + size, c:c + size].reshape(8, size // 8, 8, size // 8).mean((1, 3))
        lo, hi = p.min(), p.max()
        out[k] = (16 * (p - lo) / (hi - lo) if hi > lo else np.zeros((8, 8))).ravel()
    return out


def _load_base(name: str, data_dir, cache: Path):
    """(X, y, is_in) for the digit/letter sets, (X_in, X_out) embeddings for text."""
    if name.startswith("digits"):
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y, y < 5
    if name.startswith("letters"):
        from ..datasets.uci import load_uci

        ds = load_uci("mlbench:LetterRecognition", data_dir)
        letters = np.array(ds.classes)[ds.y]
        return ds.X, ds.y, np.isin(letters, list("ABCDEFGHIJKLM"))
    return _text_features(cache)


# ----------------------------------------------------------------------------- network


def _mlp(d_in: int, n_classes: int, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
    return body, nn.Linear(64, n_classes)


def _train_net(X, y, n_classes, seed, epochs, aux=None, boost_beta=4.0, boost_weight=1.0):
    """MLP on standardised X; with ``aux`` also Hopfield Boosting's OOD loss. Returns a function
    mapping rows to (features, logits)."""
    import torch

    from ..ood import hopfield_boosting_loss, hopfield_boosting_weights

    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xt = torch.tensor((X - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    At = None if aux is None else torch.tensor((aux - mu) / sd, dtype=torch.float32)
    body, head = _mlp(X.shape[1], n_classes, seed)
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    bs = 128
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        if At is not None:  # boosting: draw the epoch's outliers near the boundary more often
            with torch.no_grad():
                w = hopfield_boosting_weights(body(At), body(Xt[perm[:512]]), beta=boost_beta)
            aux_idx = torch.multinomial(w, len(perm), replacement=True, generator=gen)
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            f = body(Xt[idx])
            loss = torch.nn.functional.cross_entropy(head(f), yt[idx])
            if At is not None and len(idx) >= 2:
                fa = body(At[aux_idx[s:s + bs]])
                loss = loss + boost_weight * hopfield_boosting_loss(f, fa, boost_beta)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def apply(Z):
        with torch.no_grad():
            f = body(torch.tensor((Z - mu) / sd, dtype=torch.float32))
            return f.numpy().astype(np.float64), head(f).numpy().astype(np.float64)

    return apply
