"""Rendering a benchmark report as markdown and writing JSON + markdown atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write_text

__all__ = ["render_markdown", "write_report"]


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def _fmt_mib(mib: float | None) -> str:
    if mib is None or (isinstance(mib, float) and math.isnan(mib)):
        return "—"
    return f"{mib:.0f} MiB" if abs(mib) < 10240 else f"{mib / 1024:.2f} GiB"


def _fmt_num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _machine_line(m: dict[str, Any]) -> str:
    mem = f", {m['memory_gib']} GiB RAM" if m.get("memory_gib") else ""
    load = m.get("load_average")
    load_s = f", load average at the end {load[0]:.1f}" if load else ""
    gpu = ""
    if m.get("device", "cpu") == "cuda":
        gpu = (f"; device cuda: {m.get('cuda')} (compute capability {m.get('cuda_capability')}, "
               f"{m.get('cuda_memory_gib')} GiB, CUDA {m.get('cuda_runtime')})")
    return (f"{m['cpu']} ({m['cores']} cores{mem}){gpu}, torch {m['torch']} with "
            f"{m['torch_threads']} threads, faiss {m.get('faiss') or 'not installed'}, "
            f"Python {m['python']}; {m['date_utc']}{load_s}")


def render_markdown(report: dict[str, Any], command: str | None = None) -> str:
    """A markdown page: machine line, then per suite a per-peer table and a ratio table."""
    lines = ["# hopfield benchmarks", "", f"Machine: {_machine_line(report['machine'])}.", ""]
    cuda = report.get("device", "cpu") == "cuda"
    if cuda:
        lines += [("Device cuda: times are wall-clock between `torch.cuda.synchronize()` calls; "
                   "peak memory is the GPU's (`torch.cuda.max_memory_allocated`, reset before the "
                   "measured call), with the host's resident peak in brackets."), ""]
    if command:
        lines += [(f"Command: `{command}` (medians of {report['repeats']} repeats"
                   f"{', quick sizes' if report['quick'] else ''})."), ""]
    for suite in report["suites"]:
        records = [r for r in report["records"] if r["suite"] == suite]
        if not records:
            continue
        mem_head = "peak GPU memory (host)" if cuda else "peak memory"
        lines += [f"## {suite}", "", f"| case | peer | median time | {mem_head} | note |",
                  "|---|---|---:|---:|---|"]
        for rec in records:
            if rec.get("repeats", report["repeats"]) != report["repeats"]:
                rec = {**rec, "case": f"{rec['case']} ({rec['repeats']} repeats)"}
            peers = list(dict.fromkeys([*rec["time"], *rec["memory"]]))
            for peer in peers:
                t = rec["time"].get(peer, {})
                m = rec["memory"].get(peer, {})
                mem = _fmt_mib(m.get("peak_mib"))
                if m.get("peak_anon_mib") is not None:
                    mem += f" (anon {_fmt_mib(m['peak_anon_mib'])})"
                if m.get("host_peak_mib") is not None:
                    mem += f" (host {_fmt_mib(m['host_peak_mib'])})"
                status = t.get("status", m.get("status", "ok"))
                note = "" if status == "ok" else status
                info = t.get("info") or {}
                if info:
                    note = "; ".join(filter(None, [note, ", ".join(
                        f"{k}={_fmt_num(v)}" for k, v in info.items())]))
                lines.append(f"| {rec['case']} | {peer} | {_fmt_time(t.get('median'))} | {mem} "
                             f"| {note} |")
        lines += ["", "| case | ratio | value | target | met |", "|---|---|---:|---:|---|"]
        for rec in records:
            for r in rec["ratios"]:
                value = "—" if r["value"] is None else f"{r['value']:.2f}×"
                if r["value"] is None and r["metric"] == "memory" and all(
                        (rec["memory"].get(p) or {}).get("peak_mib") is not None
                        for p in (r["num"], r["den"])):
                    value = "— (denominator < 1 MiB)"
                target = "report" if r["target"] is None else f"≤ {r['target']:g}×"
                met = {True: "yes", False: "**no**", None: ""}[r["met"]]
                lines.append(f"| {rec['case']} | {r['label']} | {value} | {target} | {met} |")
            for key, val in (rec.get("derived") or {}).items():
                lines.append(f"| {rec['case']} | {key} | {_fmt_num(val)} | | |")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, command: str | None = None,
                 stem: str = "latest") -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.json`` and ``<stem>.md`` atomically; returns both paths."""
    out_dir = Path(out_dir)
    payload = {**report, "command": command}
    json_path = atomic_write_text(out_dir / f"{stem}.json", json.dumps(payload, indent=2) + "\n")
    md_path = atomic_write_text(out_dir / f"{stem}.md", render_markdown(report, command) + "\n")
    return json_path, md_path
