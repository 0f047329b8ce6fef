"""The self-contained HTML report of one training run.

`build_report` turns a `ReportContext` (plain dicts and lists, JSON-like) into one HTML page
that needs no network: CSS inline, plotly.js embedded once, every user string escaped. Each
section is a small function returning an HTML fragment; `template.html` holds the page frame.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from forgeml.report.figures import (
    FigureRenderer,
    confusion_figure,
    horizontal_bar_figure,
    learning_curve_figure,
    plotly_script,
    predicted_vs_actual_figure,
    residual_figure,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MAX_SCATTER_POINTS = 5000
MAX_BARS = 25
MAX_MATRIX_TABLE_CLASSES = 10


@dataclass
class ReportContext:
    """Everything the report shows; every field is plain data so a context can be saved as JSON.

    leaderboard: rows {family, validation, fit_time, status, note[, cv_mean, cv_std, winner]}; the
    score may also be under `score` or the metric's name, with its fold spread under `std`.
    evaluation: split name -> `evaluate_predictions` result. residuals: {"y_true", "y_pred"} on
    the test split (regression). profile: `Profile.to_dict()`; missing keys are skipped.
    """

    title: str
    model_name: str
    version: int | None
    run_id: str | None
    task: str
    metric: str
    target: str
    created: str
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnosis: dict[str, Any] | None = None
    importance: list[dict[str, Any]] | None = None
    profile: dict[str, Any] | None = None
    residuals: dict[str, list[float]] | None = None
    spec: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    learning_curve: dict[str, Any] | None = None  # neural models: {"history": [per-epoch rows], "best_epoch": int}


# ----------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A number for a table cell: 4 decimals for scores, thousands separators for big values."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else _e(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _table(headers: list[str], rows: list[list[str]], *, numeric: Collection[int] = frozenset(),
           row_classes: list[str] | None = None) -> str:
    """An HTML table; `headers` are escaped here, cells must already be HTML."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="muted">{_e(text)}</p>'


def _greater_is_better(metric: str) -> bool:
    from forgeml.evaluation.metrics import get_metric

    try:
        return get_metric(metric).greater_is_better
    except Exception:  # an unknown metric name must not break the report
        return True


def _generic(value: Any) -> str:
    """Any JSON-like value as HTML: dicts as key/value tables, lists of dicts as tables."""
    if isinstance(value, dict):
        if not value:
            return _note("none")
        return _table(["", "value"], [[_e(k), _generic(v) if isinstance(v, (dict, list)) else _num_or_text(v)]
                                      for k, v in value.items()])
    if isinstance(value, list):
        if not value:
            return _note("none")
        if all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            return _table(keys, [[_num_or_text(v.get(k)) for k in keys] for v in value])
        return _e(", ".join(str(v) for v in value))
    return _num_or_text(value)


def _num_or_text(value: Any) -> str:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return _num(value)
    if isinstance(value, (dict, list)):
        return _e(json.dumps(value, default=str))
    return "—" if value is None else _e(value)


def _eval_split(ctx: ReportContext) -> tuple[str, dict[str, Any]] | None:
    """The split the headline numbers come from: test, else validation, else train."""
    for split in ("test", "validation", "train"):
        if ctx.evaluation.get(split):
            return split, ctx.evaluation[split]
    return None


# ----------------------------------------------------------------------------- sections


def header_html(ctx: ReportContext) -> str:
    items = [
        ("model", ctx.model_name + (f" v{ctx.version}" if ctx.version is not None else "")),
        ("task", ctx.task), ("target", ctx.target), ("metric", ctx.metric),
        ("run", ctx.run_id or "—"), ("created", ctx.created),
    ]
    data = ctx.data or {}
    if data:
        columns = data.get("columns")
        columns = len(columns) if isinstance(columns, list) else columns
        shape = f"{_num(data.get('rows'))} rows × {_num(columns)} columns"
        digest = str(data.get("hash") or "")[:12]
        items.append(("data", " · ".join(str(p) for p in (data.get("source"), shape, digest) if p)))
    meta = "".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in items)
    return f'<header class="top">\n<h1>{_e(ctx.title)}</h1>\n<div class="meta">{meta}</div>\n</header>'


def summary_section(ctx: ReportContext) -> str:
    chosen = _eval_split(ctx)
    if chosen is None:
        return _section("summary", "Headline metrics", _note("no evaluation available"))
    split, result = chosen
    metrics = result.get("metrics", {})
    names = [ctx.metric] if ctx.metric in metrics else []
    names += [n for n in metrics if n != ctx.metric][: 6 - len(names)]
    cards = "".join(
        f'<div class="card{" primary" if n == ctx.metric else ""}"><div class="label">{_e(n)}</div>'
        f'<div class="value">{_num(metrics[n])}</div></div>'
        for n in names
    )
    verdict = ""
    if ctx.diagnosis:
        verdict = f"<p>Fit: {_verdict_badge(ctx.diagnosis.get('verdict'))} {_e(ctx.diagnosis.get('message', ''))}</p>"
    rows = result.get("n_samples")
    caption = f"On the {split} split" + (f" ({_num(rows)} rows)" if rows is not None else "") + "."
    return _section("summary", "Headline metrics", f'{_note(caption)}<div class="cards">{cards}</div>{verdict}')


def warnings_section(ctx: ReportContext) -> str:
    if not ctx.warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in ctx.warnings)
    return _section("warnings", "Warnings", f'<div class="callout"><ul class="warnings">{items}</ul></div>')


def _row_score(row: dict[str, Any], metric: str) -> Any:
    """A leaderboard row's validation score: key `validation`, else `score`, else the metric's name."""
    for key in ("validation", "score", metric):
        if row.get(key) is not None:
            return row[key]
    return None


def leaderboard_section(ctx: ReportContext) -> str:
    rows = list(ctx.leaderboard)
    if not rows:
        return _section("leaderboard", "Leaderboard", _note("no leaderboard: a single model was trained"))
    sign = 1 if _greater_is_better(ctx.metric) else -1

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = _row_score(row, ctx.metric)
        usable = (row.get("status", "ok") == "ok" and isinstance(value, (int, float, np.number))
                  and math.isfinite(value))
        return (0, -sign * float(value)) if usable else (1, 0.0)

    rows.sort(key=key)
    winner = next((i for i, r in enumerate(rows) if r.get("winner")), 0 if key(rows[0])[0] == 0 else None)
    has_cv = any(r.get("cv_mean") is not None for r in rows)
    headers = ["#", "family", f"validation {ctx.metric}"] + (["cv mean ± std"] if has_cv else []) + [
        "fit time (s)", "status", "note"]
    body = []
    for i, row in enumerate(rows):
        status = str(row.get("status", "ok"))
        badge = {"ok": "good", "skipped": "unknown", "failed": "bad"}.get(status, "unknown")
        spread = row.get("std") if not has_cv else None  # a bare `std` belongs to the score (cv folds)
        shown = _num(_row_score(row, ctx.metric)) + (f" ± {_num(spread)}" if spread is not None else "")
        cells = [str(i + 1), _e(row.get("family", "?")) + (" ★" if i == winner else ""), shown]
        if has_cv:
            cv = row.get("cv_mean")
            cells.append("—" if cv is None else f"{_num(cv)} ± {_num(row.get('cv_std'))}")
        fit_time = row.get("fit_time")
        cells += ["—" if fit_time is None else _e(f"{float(fit_time):,.2f}"),
                  f'<span class="badge {badge}">{_e(status)}</span>', _e(row.get("note") or "")]
        body.append(cells)
    numeric = {0, 2, 3, 4} if has_cv else {0, 2, 3}
    classes = ["winner" if i == winner else "" for i in range(len(rows))]
    return _section("leaderboard", "Leaderboard",
                    _note("Best first by validation score; the winner is highlighted.")
                    + _table(headers, body, numeric=numeric, row_classes=classes))


def _verdict_badge(verdict: Any) -> str:
    kind = {"good fit": "good", "overfitting": "warn", "underfitting": "bad"}.get(str(verdict), "unknown")
    return f'<span class="badge {kind}">{_e(verdict or "unknown")}</span>'


def evaluation_section(ctx: ReportContext) -> str:
    splits = [s for s in SPLITS if ctx.evaluation.get(s)] + [s for s in ctx.evaluation if s not in SPLITS]
    if not splits:
        return _section("evaluation", "Train, validation and test", _note("no evaluation available"))
    names = list(dict.fromkeys(
        ([ctx.metric] if any(ctx.metric in ctx.evaluation[s].get("metrics", {}) for s in splits) else [])
        + [n for s in splits for n in ctx.evaluation[s].get("metrics", {})]
    ))
    rows = [[_e(n)] + [_num(ctx.evaluation[s].get("metrics", {}).get(n)) for s in splits] for n in names]
    classes = ["primary" if n == ctx.metric else "" for n in names]
    body = _table(["metric", *splits], rows, numeric=set(range(1, len(splits) + 1)), row_classes=classes)
    if ctx.diagnosis:
        d = ctx.diagnosis
        gap, gap_text = d.get("gap"), ""
        if isinstance(gap, (int, float)) and math.isfinite(gap):
            ahead = "train ahead" if gap >= 0 else "held-out ahead"
            if _greater_is_better(str(d.get("metric", ctx.metric))):
                gap_text = f" ({ahead} by {abs(gap):.3f})"
            else:
                gap_text = f" ({ahead} by {abs(gap):.0%} of the held-out error)"
        body = (f'<div class="callout info"><b>Diagnosis:</b> {_verdict_badge(d.get("verdict"))}{_e(gap_text)} '
                f'{_e(d.get("message", ""))}</div>') + body
    notes = [f"{s}: {ctx.evaluation[s]['note']}" for s in splits if ctx.evaluation[s].get("note")]
    body += "".join(_note(n) for n in notes)
    summaries = {s: ctx.evaluation[s]["residuals_summary"] for s in splits if ctx.evaluation[s].get("residuals_summary")}
    if summaries:
        keys = ["mean", "std", "p5", "p95"]
        body += "<h3>Residuals (actual - predicted)</h3>" + _table(
            ["split", *keys], [[_e(s)] + [_num(v.get(k)) for k in keys] for s, v in summaries.items()],
            numeric={1, 2, 3, 4})
    return _section("evaluation", "Train, validation and test", body)


def confusion_section(ctx: ReportContext, figs: FigureRenderer) -> str:
    chosen = _eval_split(ctx)
    cm = chosen[1].get("confusion_matrix") if chosen else None
    if not cm:
        return _section("confusion", "Confusion matrix", _note("no confusion matrix available"))
    labels, matrix = cm.get("labels", []), cm.get("matrix", [])
    height = max(320, min(900, 120 + 38 * len(labels)))
    body = _note(f"On the {chosen[0]} split: rows are true classes, columns predicted; colour is the share of the row.")
    body += figs.render(confusion_figure(labels, matrix), height=height)
    if len(labels) <= MAX_MATRIX_TABLE_CLASSES:
        rows = [[f"<b>{_e(label)}</b>"] + [_num(int(v)) for v in row] for label, row in zip(labels, matrix)]
        body += _table(["true \\ predicted", *[str(lab) for lab in labels]], rows, numeric=set(range(1, len(labels) + 1)))
    return _section("confusion", "Confusion matrix", body)


def per_class_section(ctx: ReportContext) -> str:
    chosen = _eval_split(ctx)
    per_class = chosen[1].get("per_class") if chosen else None
    if not per_class:
        return _section("per-class", "Per-class metrics", _note("no per-class metrics available"))
    keys = ["precision", "recall", "f1", "support"]
    rows = [[_e(label)] + [_num(v.get(k)) for k in keys] for label, v in per_class.items()]
    return _section("per-class", "Per-class metrics",
                    _note(f"On the {chosen[0]} split.") + _table(["class", *keys], rows, numeric={1, 2, 3, 4}))


def residuals_section(ctx: ReportContext, figs: FigureRenderer) -> str:
    res = ctx.residuals or {}
    y_true = np.asarray(res.get("y_true", []), dtype=float)
    y_pred = np.asarray(res.get("y_pred", []), dtype=float)
    if y_true.size == 0 or y_true.shape != y_pred.shape:
        return _section("residuals", "Residuals", _note("no test predictions available for residual plots"))
    if y_true.size > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(y_true.size, MAX_SCATTER_POINTS, replace=False))
        y_true, y_pred = y_true[keep], y_pred[keep]
    body = _note(f"Test split, {y_true.size:,} rows shown.") + '<div class="grid2">'
    body += f"<div>{figs.render(predicted_vs_actual_figure(y_true, y_pred))}</div>"
    body += f"<div>{figs.render(residual_figure(y_true, y_pred))}</div></div>"
    return _section("residuals", "Residuals", body)


def learning_section(ctx: ReportContext, figs: FigureRenderer) -> str:
    """Per-epoch loss (and metric) of a neural model, with the early-stopping point; empty for other models."""
    curve = ctx.learning_curve or {}
    history = [row for row in curve.get("history") or [] if "epoch" in row]
    if not history:
        return ""
    best = curve.get("best_epoch")
    body = _note(f"{len(history)} epochs" + (f"; early stopping kept epoch {best}." if best is not None else "."))
    body += '<div class="grid2">'
    body += f"<div>{figs.render(learning_curve_figure(history, 'loss', best, 'Loss per epoch'))}</div>"
    if any(row.get("val_metric") is not None for row in history):
        body += f"<div>{figs.render(learning_curve_figure(history, 'metric', best, 'Validation metric per epoch'))}</div>"
    return _section("learning", "Learning curves", body + "</div>")


def importance_section(ctx: ReportContext, figs: FigureRenderer) -> str:
    rows = [r for r in (ctx.importance or []) if "feature" in r]
    if not rows:
        return _section("importance", "Feature importance", _note("feature importance was not computed"))
    rows = sorted(rows, key=lambda r: float(r.get("importance") or 0.0), reverse=True)
    top = rows[:MAX_BARS]
    fig = horizontal_bar_figure([str(r["feature"]) for r in top], [float(r.get("importance") or 0.0) for r in top],
                                errors=[float(r.get("std") or 0.0) for r in top],
                                x_title=f"drop in {ctx.metric} when shuffled")
    more = f" Top {MAX_BARS} of {len(rows)} columns shown." if len(rows) > MAX_BARS else ""
    body = _note(f"Permutation importance on the raw input columns: how much {ctx.metric} worsens when a column "
                 f"is shuffled (mean ± std over repeats).{more}")
    return _section("importance", "Feature importance", body + figs.render(fig, height=max(260, 60 + 24 * len(top))))


def _missing_rates(profile: dict[str, Any]) -> dict[str, float]:
    missing = profile.get("missing") or {}
    if isinstance(missing, list):  # [{"column", "fraction"|"rate"|"count"}]
        missing = {str(m.get("column")): m.get("fraction", m.get("rate", m.get("count", 0))) for m in missing
                   if isinstance(m, dict)}
    if not isinstance(missing, dict):
        return {}
    values = {str(k): float(v) for k, v in missing.items() if isinstance(v, (int, float)) and v}
    rows = profile.get("rows")
    if values and max(values.values()) > 1 and isinstance(rows, (int, float)) and rows > 0:
        values = {k: v / rows for k, v in values.items()}  # counts, not fractions
    return dict(sorted(values.items(), key=lambda kv: kv[1], reverse=True))


def profile_section(ctx: ReportContext, figs: FigureRenderer) -> str:
    profile = ctx.profile or {}
    if not profile:
        return _section("profile", "Data profile", _note("no data profile available"))
    columns = profile.get("columns")
    facts = {"rows": profile.get("rows"), "columns": len(columns) if isinstance(columns, list) else columns,
             "duplicate rows": profile.get("duplicate_rows")}
    cards = "".join(f'<div class="card"><div class="label">{_e(k)}</div><div class="value">{_num(v)}</div></div>'
                    for k, v in facts.items() if v is not None)
    body = f'<div class="cards">{cards}</div>'
    warnings = profile.get("warnings") or []
    if warnings:
        body += '<div class="callout"><ul class="warnings">' + "".join(
            f"<li>{_e(w if not isinstance(w, dict) else json.dumps(w, default=str))}</li>" for w in warnings) + "</ul></div>"
    kinds = profile.get("kinds") or {}
    if isinstance(kinds, dict) and kinds:
        by_kind: dict[str, list[str]] = {}
        for column, kind in kinds.items():
            by_kind.setdefault(str(kind), []).append(str(column))
        rows = [[_e(k), _num(len(cols)), _e(", ".join(cols[:15]) + (f", … ({len(cols) - 15} more)" if len(cols) > 15 else ""))]
                for k, cols in sorted(by_kind.items())]
        body += "<h3>Column kinds</h3>" + _table(["kind", "count", "columns"], rows, numeric={1})
    rates = _missing_rates(profile)
    body += "<h3>Missing values</h3>"
    if rates:
        shown = list(rates.items())[:MAX_BARS]
        fig = horizontal_bar_figure([k for k, _ in shown], [v for _, v in shown], x_title="missing rate", percent=True)
        body += figs.render(fig, height=max(220, 60 + 24 * len(shown)))
    else:
        body += _note("no missing values")
    balance = profile.get("class_balance")
    if isinstance(balance, dict) and balance and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in balance.values()):
        profile = {**profile, "class_balance": {k: f"{v:.1%}" for k, v in balance.items()}}  # shares, not counts
    pairs = profile.get("duplicate_columns") or []
    if pairs:
        body += "<h3>Duplicate columns</h3>" + _e(", ".join(" = ".join(map(str, p)) for p in pairs))
    for key, title in [("class_balance", "Class balance"), ("target_stats", "Target"),
                       ("constant_columns", "Constant columns"), ("high_cardinality", "High-cardinality columns"),
                       ("leakage", "Possible leakage")]:
        value = profile.get(key)
        if value not in (None, [], {}):
            body += f"<h3>{_e(title)}</h3>" + _generic(value)
    return _section("profile", "Data profile", body)


def spec_section(ctx: ReportContext) -> str:
    if not ctx.spec:
        return _section("spec", "Resolved spec", _note("no spec recorded"))
    import yaml

    try:
        text = yaml.safe_dump(ctx.spec, sort_keys=False, default_flow_style=False, allow_unicode=True)
    except yaml.YAMLError:
        text = json.dumps(ctx.spec, indent=2, default=str)
    return _section("spec", "Resolved spec", f"<pre>{_e(text)}</pre>")


# ----------------------------------------------------------------------------- page

_NAV = {"summary": "Summary", "warnings": "Warnings", "leaderboard": "Leaderboard", "evaluation": "Evaluation",
        "confusion": "Confusion", "per-class": "Per class", "residuals": "Residuals", "learning": "Learning", "importance": "Importance",
        "profile": "Data", "spec": "Spec"}


def build_report(ctx: ReportContext) -> str:
    """The whole report as one self-contained HTML page (about 5 MB with plotly.js inline)."""
    import forgeml

    figs = FigureRenderer()
    parts = [("summary", summary_section(ctx)), ("warnings", warnings_section(ctx)),
             ("leaderboard", leaderboard_section(ctx)), ("evaluation", evaluation_section(ctx))]
    if ctx.task == "classification":
        parts += [("confusion", confusion_section(ctx, figs)), ("per-class", per_class_section(ctx))]
    else:
        parts += [("residuals", residuals_section(ctx, figs))]
    parts += [("learning", learning_section(ctx, figs)),
              ("importance", importance_section(ctx, figs)), ("profile", profile_section(ctx, figs)),
              ("spec", spec_section(ctx))]
    parts = [(anchor, body) for anchor, body in parts if body]
    nav = "".join(f'<a href="#{anchor}">{_e(_NAV[anchor])}</a>' for anchor, _ in parts)
    template = Template(resources.files("forgeml.report").joinpath("template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=_e(ctx.title),
        forgeml_version=_e(forgeml.__version__),
        created=_e(ctx.created),
        plotly_script=plotly_script() if figs.count else "",
        header=header_html(ctx),
        nav=nav,
        sections="\n".join(body for _, body in parts),
    )


def write_report(ctx: ReportContext, path: Path) -> Path:
    """Write the report to `path` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(ctx), encoding="utf-8")
    logger.info("report written to %s", path)
    return path
