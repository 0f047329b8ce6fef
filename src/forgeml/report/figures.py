"""Plotly figures for the report, rendered as inline `<div>` + `<script>` snippets.

The page embeds plotly.js once (`plotly_script`); each figure is then a few hundred bytes of
JSON. Figure JSON is written by hand rather than by `fig.to_html` so that div ids are stable
and user strings cannot close the `<script>` element ("<" is escaped as \\u003c).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_CONFIG = json.dumps({"displaylogo": False, "responsive": True})
_FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Arial, sans-serif"


def plotly_script() -> str:
    """plotly.js inline in one <script> element (about 4.8 MB); no CDN."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().replace("</script", "<\\/script")
    return f'<script type="text/javascript">window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>\n<script type="text/javascript">{js}</script>'


def _safe_json(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class FigureRenderer:
    """Turns plotly figures into HTML snippets with ids fig-1, fig-2, ...; `count` says how many."""

    def __init__(self) -> None:
        self.count = 0

    def render(self, fig: Any, *, height: int = 380) -> str:
        self.count += 1
        div_id = f"fig-{self.count}"
        fig.update_layout(
            template="plotly_white",
            height=height,
            margin={"l": 60, "r": 20, "t": 40, "b": 50},
            font={"family": _FONT, "size": 12},
        )
        payload = _safe_json(fig.to_json())
        return (
            f'<div id="{div_id}" class="figure" style="height:{height}px"></div>\n'
            f"<script>(function(){{var f={payload};"
            f'Plotly.newPlot("{div_id}",f.data,f.layout,{_CONFIG});}})();</script>'
        )


def confusion_figure(labels: list[Any], matrix: list[list[int]]) -> Any:
    """Heatmap of a confusion matrix: colour = share of the true class, text = counts."""
    import plotly.graph_objects as go

    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    names = [str(label) for label in labels]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            text=counts.astype(int),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share of<br>true class"}},
            hovertemplate="true %{y}<br>predicted %{x}<br>count %{text}<br>share %{z:.1%}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="predicted", type="category", side="bottom")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return fig


def predicted_vs_actual_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Any:
    """Scatter of predicted against actual values with the y = x line."""
    import plotly.graph_objects as go

    low = float(min(y_true.min(), y_pred.min()))
    high = float(max(y_true.max(), y_pred.max()))
    fig = go.Figure(
        [
            go.Scatter(x=y_true, y=y_pred, mode="markers", name="rows",
                       marker={"size": 5, "opacity": 0.55, "color": "#2f6fde"},
                       hovertemplate="actual %{x:.4g}<br>predicted %{y:.4g}<extra></extra>"),
            go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect",
                       line={"color": "#c2372d", "dash": "dash"}),
        ]
    )
    fig.update_layout(title="Predicted vs actual", showlegend=False)
    fig.update_xaxes(title_text="actual")
    fig.update_yaxes(title_text="predicted")
    return fig


def residual_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Any:
    """Residuals (actual - predicted) against predictions, with the zero line."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(x=y_pred, y=y_true - y_pred, mode="markers",
                   marker={"size": 5, "opacity": 0.55, "color": "#1f8a4c"},
                   hovertemplate="predicted %{x:.4g}<br>residual %{y:.4g}<extra></extra>")
    )
    fig.add_hline(y=0, line={"color": "#c2372d", "dash": "dash"})
    fig.update_layout(title="Residuals", showlegend=False)
    fig.update_xaxes(title_text="predicted")
    fig.update_yaxes(title_text="actual - predicted")
    return fig


def horizontal_bar_figure(names: list[str], values: list[float], *, errors: list[float] | None = None,
                          x_title: str = "", percent: bool = False) -> Any:
    """Horizontal bars, first name on top (importance, missing rates)."""
    import plotly.graph_objects as go

    bar = go.Bar(
        x=values[::-1],
        y=names[::-1],
        orientation="h",
        marker={"color": "#2f6fde"},
        error_x={"type": "data", "array": errors[::-1], "visible": True} if errors else None,
        hovertemplate="%{y}: %{x:" + (".1%" if percent else ".4g") + "}<extra></extra>",
    )
    fig = go.Figure(bar)
    fig.update_xaxes(title_text=x_title, tickformat=".0%" if percent else None)
    fig.update_yaxes(type="category", automargin=True)
    return fig


def learning_curve_figure(history: list[dict[str, Any]], key: str, best_epoch: int | None, title: str) -> Any:
    """Train and validation `key` ("loss" or "metric") per epoch, with the early-stopping point marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for split, color in (("train", "#2f6fde"), ("val", "#1f8a4c")):
        name = f"{split}_{key}"
        points = [(row["epoch"], row[name]) for row in history if row.get(name) is not None]
        if points:
            epochs, values = zip(*points)
            fig.add_trace(go.Scatter(x=list(epochs), y=list(values), mode="lines+markers", name=split,
                                     line={"color": color}, marker={"size": 4},
                                     hovertemplate=f"epoch %{{x}}<br>{split} {key} %{{y:.4g}}<extra></extra>"))
    if best_epoch is not None:
        fig.add_vline(x=best_epoch, line={"color": "#c2372d", "dash": "dash"},
                      annotation_text=f"best epoch {best_epoch}", annotation_position="top")
    fig.update_layout(title=title)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=key)
    return fig
