"""A protocol report as tables: LaMa's TSV, CSV, Markdown, JSON, and the terminal text with the
published rows beside ours.

LaMa's TSV is what bin/evaluate_predicts.py writes with the pandas it pins (1.1.5):
`pd.DataFrame(results).stack(1).unstack(0)`, all-NaN columns dropped, `to_csv(sep='\\t',
float_format='%.4f')`. Rows are the groups sorted as strings ('0-10%', '10-20%', ..., 'total'),
columns (metric, statistic) sorted by metric name, then 'mean' before 'std'; two header lines (metric,
statistic) with an empty first cell; NaN (FID of a group of one image, the integral score outside
'total') is an empty cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

from inpaintjax.protocols.evaluate import TOTAL


def _cells(report: dict) -> dict:
    """{(column name, statistic): {group: value}} for every metric and derived score."""
    cells = {}
    for name, per_group in report["results"].items():
        for g, stats in per_group.items():
            for stat, v in stats.items():
                cells.setdefault((name, stat), {})[g] = v
    for name, v in report.get("derived", {}).items():
        cells[(name, "mean")] = {TOTAL: v}
    return cells


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def lama_tsv(report: dict) -> str:
    """The report in LaMa's layout (module docstring)."""
    cells = _cells(report)
    groups = sorted(report["groups"])
    cols = sorted(c for c, vals in cells.items() if any(v is not None and not (isinstance(v, float) and math.isnan(v))
                                                        for v in vals.values()))
    lines = ["\t" + "\t".join(c[0] for c in cols), "\t" + "\t".join(c[1] for c in cols)]
    for g in groups:
        row = []
        for c in cols:
            v = cells[c].get(g)
            row.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else "%.4f" % v)
        lines.append(g + "\t" + "\t".join(row))
    return "\n".join(lines) + "\n"


def to_csv(report: dict) -> str:
    """One row per (group, metric): group, images, metric, mean, std (empty where not defined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "images", "metric", "mean", "std"])
    for g in report["groups"]:
        for name, per_group in report["results"].items():
            s = per_group.get(g, {})
            w.writerow([g, report["group_counts"][g], name, _fmt(s.get("mean"), 6), _fmt(s.get("std"), 6)])
    for name, v in report.get("derived", {}).items():
        w.writerow([TOTAL, report["count"], name, _fmt(v, 6), ""])
    return buf.getvalue()


def _fmt(v, digits=4) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return f"{v:.{digits}f}"


def _arrow(report, name) -> str:
    info = report["metrics"].get(name)
    if info is None:
        return ""
    return " ↑" if info["higher_is_better"] else " ↓"


def _group_rows(report: dict):
    """(header, one row of cells per group): the group, its image count, each metric's mean ± std
    ('' where the metric has no value for the group)."""
    names = list(report["results"])
    head = ["group", "images"] + [n + _arrow(report, n) for n in names]
    rows = []
    for g in report["groups"]:
        row = [g, str(report["group_counts"][g])]
        for n in names:
            s = report["results"][n].get(g, {})
            cell = _fmt(s.get("mean"))
            if cell and "std" in s and _fmt(s.get("std")):
                cell += f" ± {_fmt(s['std'])}"
            row.append(cell)
        rows.append(row)
    return head, rows


def to_markdown(report: dict) -> str:
    """Our groups as rows, the metrics as columns (mean ± std), then the published rows with sources."""
    head, rows = _group_rows(report)
    lines = [f"Protocol `{report['protocol']}`: {report['title']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    for name, v in report.get("derived", {}).items():
        lines.append(f"\n{name} (total): {_fmt(v)}")
    missing = not_computed_lines(report)
    if missing:
        lines += [""] + [f"- {line}" for line in missing]
    pub = published_lines(report, markdown=True)
    if pub:
        lines += [""] + pub
    if not report["comparable"]:
        lines += ["", _not_comparable(report)]
    return "\n".join(lines) + "\n"


def _not_comparable(report) -> str:
    why = []
    if report["image_sizes"] != [f"{report['image_size']}x{report['image_size']}"]:
        why.append(f"images {', '.join(report['image_sizes'])}, the protocol's are "
                   f"{report['image_size']}x{report['image_size']}")
    if report["skipped"]:
        why.append(f"skipped {', '.join(report['skipped'])}")
    return f"Not comparable with the published numbers as run: {'; '.join(why)}."


def not_computed_lines(report: dict) -> list:
    """One line per empty cell: '<metric> (<group>): not computed: <why>'."""
    return [f"{name} ({g}): not computed: {why}" for name, per_group in (report.get("not_computed") or {}).items()
            for g, why in per_group.items()]


def published_lines(report: dict, markdown: bool = False) -> list:
    """The published rows (verified in their sources) beside our total, one line each, and the sources."""
    rows = report.get("published") or []
    if not rows:
        return []
    names = list(report["results"])
    ours = {n: report["results"][n][TOTAL]["mean"] for n in names}
    head = ["method", "dataset", "masks"] + names
    body = [[report.get("method") or "this run", f"{report['count']} images",
             report.get("masks_label") or report.get("mask") or "-"] + [_fmt(ours[n], 3) for n in names]]
    sources = []
    for r in rows:
        if r["source"] not in sources:
            sources.append(r["source"])
        ref = f"[{sources.index(r['source']) + 1}]"
        label = r["method"] + (f" ({r['note']})" if r["note"] else "")
        body.append([f"{label} {ref}", r["dataset"], r["masks"]] +
                    [(_fmt(r["values"][n], 3) if n in r["values"] else "-") for n in names])
    out = ["Published (verified in the source named):"]
    if markdown:
        out += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(b) + " |" for b in body]
        out.append("")
    else:
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
        out += ["  " + "  ".join(str(x).ljust(wd) for x, wd in zip(row, widths)) for row in [head] + body]
    out += [f"[{i + 1}] {s}" for i, s in enumerate(sources)]
    return out


def format_text(report: dict) -> str:
    """The terminal summary: per group and total, the published rows, and the sources."""
    names = list(report["results"])
    head, rows = _group_rows(report)
    body = [row[:2] + [cell or "nan" for cell in row[2:]] for row in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = [f"protocol {report['protocol']}: {report['title']}"]
    lines += ["  ".join(x.ljust(wd) for x, wd in zip(row, widths)).rstrip() for row in [head] + body]
    for name, v in report.get("derived", {}).items():
        lines.append(f"{name} (total): {_fmt(v)}")
    lines += not_computed_lines(report)
    described = [f"{n}: {report['metrics'][n]['description']}" for n in names if report["metrics"][n]["description"]]
    lines.append(f"definitions: {'; '.join(described)}")
    lines.append(f"source: {'; '.join(report['sources'])}")
    pub = published_lines(report)
    if pub:
        lines += [""] + pub
    if not report["comparable"]:
        lines.append(_not_comparable(report))
    return "\n".join(lines)


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def plot(report: dict, path: str) -> None:
    """<protocol>.png: one panel per metric, its mean per group (hole-area bins) and the total as a
    dashed line (the total alone where the protocol has no groups)."""
    from inpaintjax import metrics_report
    names = list(report["results"])
    summary = {g: {n: report["results"][n][g]["mean"] for n in names} for g in report["groups"] if g != TOTAL}
    summary[metrics_report.ALL] = {n: report["results"][n][TOTAL]["mean"] for n in names}
    metrics_report.plot_png(summary, names, path, title=f"{report['protocol']}: {report.get('method') or ''} "
                                                        f"({report['count']} images)".replace(":  (", ": ("))


def write_tables(report: dict, out_dir: str) -> list:
    """Write <protocol>.json, .csv, .md and .png (the plot) into out_dir, and <protocol>.tsv in LaMa's
    layout when the protocol's layout is 'lama_tsv'; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    name = report["protocol"]
    written = []
    for fname, text in ((f"{name}.json", json.dumps(_json_safe(report), indent=2) + "\n"),
                        (f"{name}.csv", to_csv(report)), (f"{name}.md", to_markdown(report))) + \
            (((f"{name}.tsv", lama_tsv(report)),) if report.get("layout") == "lama_tsv" else ()):
        path = os.path.join(out_dir, fname)
        with open(path, "w") as fh:
            fh.write(text)
        written.append(path)
    written.append(os.path.join(out_dir, f"{name}.png"))
    plot(report, written[-1])
    return written
