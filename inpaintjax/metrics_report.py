"""The per-bucket evaluation tables as files: JSON, CSV, Markdown and a plot.

Each function takes a summary as `BucketedMetrics.summary()` returns it, {bucket name: {metric:
mean or None, 'count': n}, ..., 'all': {...}} with the buckets in order, and the metric names to
write (in order). A row may also hold 'not_computed': {metric: reason} (the evaluation's set-level
metrics, FID and the like, in a bucket with too few images): JSON keeps it, the Markdown table lists
the reasons under the table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Mapping, Optional, Sequence

ALL = "all"


def _fmt(v: Optional[float], digits: int) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def _makedirs_for(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _write(text: str, path: Optional[str]) -> str:
    if path is not None:
        _makedirs_for(path)
        with open(path, "w") as f:
            f.write(text)
    return text


def write_json(summary: Mapping[str, dict], path: str) -> dict:
    """Write the summary as JSON (non-finite means, e.g. +inf PSNR of a perfect image, become
    null); returns what was written."""
    clean = {g: {k: (v if v is None or isinstance(v, (int, str, dict)) or math.isfinite(v) else None)
                 for k, v in row.items()} for g, row in summary.items()}
    _write(json.dumps(clean, indent=1) + "\n", path)
    return clean


def csv_text(summary: Mapping[str, dict], names: Sequence[str], path: Optional[str] = None) -> str:
    """CSV with header `bucket,count,<metrics>` and one row per bucket then `all` (empty = no
    data). Writes `path` if given; returns the text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(names)
    writer.writerow(["bucket", "count"] + names)
    for g, row in summary.items():
        writer.writerow([g, row["count"]] + ["" if row[k] is None else repr(row[k]) for k in names])
    return _write(buf.getvalue(), path)


def markdown_text(summary: Mapping[str, dict], names: Sequence[str], path: Optional[str] = None,
                  digits: Optional[Mapping[str, int]] = None) -> str:
    """Markdown table: rows = buckets then 'all', columns = bucket, count, metrics. PSNR columns
    get 2 decimals, others 4 (override with `digits`); '-' marks an empty cell. Writes `path` if
    given; returns the text."""
    names = list(names)
    digits = dict(digits or {})
    lines = ["| bucket | count | " + " | ".join(names) + " |",
             "|---|---:|" + "".join("---:|" for _ in names)]
    for g, row in summary.items():
        cells = [_fmt(row[k], digits.get(k, 2 if k.startswith("psnr") else 4)) for k in names]
        lines.append(f"| {g} | {row['count']} | " + " | ".join(cells) + " |")
    return _write("\n".join(lines) + "\n" + not_computed_notes({"": summary}), path)


def not_computed_notes(summaries: Mapping[str, Mapping[str, dict]]) -> str:
    """Markdown lines under a table saying why cells are empty: `summaries` maps a method name ('' for
    a one-method table) to its summary; rows' 'not_computed' entries with one reason are grouped
    ("fid, kid in 1-10%, 10-20%: 2 masks < ..."). '' when no row has any."""
    grouped: dict = {}
    for method, summary in summaries.items():
        for g, row in summary.items():
            for metric, why in (row.get("not_computed") or {}).items():
                where = f"{method} {g}".strip()
                grouped.setdefault(why, {}).setdefault(metric, []).append(where)
    if not grouped:
        return ""
    lines = ["", "Not computed:"]
    for why, by_metric in grouped.items():
        # metrics that share their places print together
        places: dict = {}
        for metric, where in by_metric.items():
            places.setdefault(tuple(where), []).append(metric)
        for where, metrics in places.items():
            lines.append(f"- {', '.join(metrics)} in {', '.join(where)}: {why}")
    return "\n".join(lines) + "\n"


def plot_png(summary: Mapping[str, dict], names: Sequence[str], path: str,
             title: Optional[str] = None) -> None:
    """One panel per metric: mean per bucket (points and line), the overall mean as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(names)
    if not names:
        raise ValueError("nothing to plot: no metrics were added")
    labels = [g for g in summary if g != ALL]
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows))
    FigureCanvasAgg(fig)
    for j, k in enumerate(names):
        ax = fig.add_subplot(rows, cols, j + 1)
        ys = [summary[lab][k] for lab in labels]
        xs = [i for i, y in enumerate(ys) if y is not None and math.isfinite(y)]
        ax.plot(xs, [ys[i] for i in xs], marker="o")
        overall = summary[ALL][k]
        if overall is not None and math.isfinite(overall):
            ax.axhline(overall, linestyle="--", color="grey", linewidth=1)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, fontsize=7)
        ax.set_title(k, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _makedirs_for(path)
    fig.savefig(path, format="png", dpi=100)
