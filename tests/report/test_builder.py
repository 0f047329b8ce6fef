from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser

import pytest

from forgeml.report.builder import ReportContext, build_report, write_report

EVIL = '<script>alert("x")</script>'


class _Tags(HTMLParser):
    """Collects real tags and their attributes; script bodies (plotly.js) are not parsed as tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def classification_page(classification_ctx) -> str:
    return build_report(classification_ctx)


@pytest.fixture(scope="module")
def regression_page(regression_ctx) -> str:
    return build_report(regression_ctx)


def _section_ids(page: str) -> list[str]:
    return [attrs["id"] for tag, attrs in _parse(page).tags if tag == "section"]


@pytest.mark.parametrize("which", ["classification_page", "regression_page"])
def test_page_makes_no_external_requests(which, request):
    page = request.getfixturevalue(which)
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "srcset", "data", "action"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag != "link", attrs
        assert not (tag == "script" and "src" in attrs), attrs
        assert tag not in ("iframe", "img", "object", "embed"), attrs
    css = "\n".join(parsed.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css


@pytest.mark.parametrize("which", ["classification_page", "regression_page"])
def test_plotly_js_is_embedded_once(which, request):
    from plotly.offline import get_plotlyjs

    page = request.getfixturevalue(which)
    assert page.count(get_plotlyjs()[:300]) == 1
    assert page.count("Plotly.newPlot(") >= 3
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_classification_sections(classification_page, classification_ctx):
    ids = _section_ids(classification_page)
    assert ids == ["summary", "warnings", "leaderboard", "evaluation", "confusion", "per-class", "importance",
                   "profile", "spec"]
    page = classification_page
    # header: model, version, task, metric, run id, date and data fingerprint
    for text in ("iris v3", "classification", "log_loss", "run-0123abcd", "2025-06-01T12:00:00+00:00",
                 "9f86d081884c", "iris.csv · 150 rows × 5 columns"):
        assert text in page, text
    # headline card for the primary metric on the test split, diagnosis verdict and message
    test_loss = classification_ctx.evaluation["test"]["metrics"]["log_loss"]
    assert f'<div class="label">log_loss</div><div class="value">{test_loss:.4f}</div>' in page
    assert classification_ctx.diagnosis["verdict"] in page
    assert "vs test" in page
    # train and test side by side; per-class rows; confusion matrix figure and table
    assert '<th class="num">train</th><th class="num">test</th>' in page
    for label in ("setosa", "versicolor", "virginica"):
        assert f"<td>{label}</td>" in page
    assert '"type":"heatmap"' in page and "true \\ predicted" in page
    # importance chart, profile (kinds, missing bar chart, warnings, leakage) and the YAML spec
    assert "Permutation importance on the raw input columns" in page
    assert "petal" in page
    assert "<h3>Column kinds</h3>" in page and "<h3>Missing values</h3>" in page and "1 duplicate row" in page
    assert "<h3>Possible leakage</h3>" in page and "almost determines the target" in page
    assert "<h3>Class balance</h3>" in page
    assert "<pre>seed: 42\ndata:\n  source: iris.csv\n  target: species\n" in page


def test_leaderboard_is_best_first_and_highlights_the_winner(classification_page, regression_page):
    # log_loss: lower is better, so logistic_regression (0.22) wins over random_forest (0.31)
    rows = re.findall(r"<tr( class=\"winner\")?><td class=\"num\">(\d)</td><td>([a-z_]+)", classification_page)
    assert [(bool(w), rank, family) for w, rank, family in rows] == [
        (True, "1", "logistic_regression"), (False, "2", "random_forest"), (False, "3", "lightgbm"),
        (False, "4", "mlp"),
    ]
    assert "0.2300 ± 0.0200" in classification_page
    assert '<span class="badge bad">failed</span>' in classification_page
    assert '<tr class="winner"><td class="num">1</td><td>ridge ★</td>' in regression_page


def test_regression_sections(regression_page, regression_ctx):
    ids = _section_ids(regression_page)
    assert ids == ["summary", "leaderboard", "evaluation", "residuals", "importance", "profile", "spec"]
    page = regression_page
    assert '<th class="num">train</th><th class="num">validation</th><th class="num">test</th>' in page
    assert "Predicted vs actual" in page and "Residuals (actual - predicted)" in page
    assert "<h3>Target</h3>" in page
    assert "confusion" not in ids and "per-class" not in ids
    assert "sklearn://diabetes" in page


def test_user_strings_are_escaped(classification_ctx):
    ctx = dataclasses.replace(
        classification_ctx,
        title=EVIL, model_name=EVIL, run_id=EVIL, target=EVIL,
        leaderboard=[{"family": EVIL, "validation": 0.1, "fit_time": 1.0, "status": "ok", "note": EVIL}],
        importance=[{"feature": EVIL, "importance": 0.5, "std": 0.1}],
        profile={"rows": 10, "kinds": {EVIL: "text"}, "missing": {EVIL: 0.5}, "warnings": [EVIL],
                 "leakage": [EVIL]},
        spec={"data": {"target": EVIL}},
        data={"hash": EVIL, "source": EVIL},
        warnings=[EVIL],
    )
    page = build_report(ctx)
    assert EVIL not in page
    assert "</script><script" not in page.replace(" ", "")
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 8
    # inside figure JSON the string is unicode-escaped, so it cannot close the <script> element
    assert "\\u003cscript\\u003e" in page


def test_minimal_context_renders_every_placeholder_without_plotly():
    ctx = ReportContext(title="t", model_name="m", version=None, run_id=None, task="classification",
                        metric="accuracy", target="y", created="2025-01-01")
    page = build_report(ctx)
    assert _section_ids(page) == ["summary", "leaderboard", "evaluation", "confusion", "per-class", "importance",
                                  "profile", "spec"]
    assert "Plotly.newPlot" not in page and len(page) < 50_000
    assert "feature importance was not computed" in page


def test_profile_is_read_tolerantly(classification_ctx):
    profile = {"rows": 200, "missing": {"a": 20, "b": 0}, "leakage": {"a": 0.99}, "something_new": [1, 2]}
    page = build_report(dataclasses.replace(classification_ctx, profile=profile))
    assert '"x":[0.1],"y":["a"]' in page  # 20 missing of 200 rows -> 10%; b has none
    assert "<h3>Possible leakage</h3>" in page


def test_residuals_are_sampled_to_5000_points(regression_ctx):
    big = {"y_true": list(range(12_000)), "y_pred": [v + 1.0 for v in range(12_000)]}
    page = build_report(dataclasses.replace(regression_ctx, residuals=big))
    assert "5,000 rows shown" in page


def test_report_is_deterministic_and_written_to_disk(regression_ctx, regression_page, tmp_path):
    path = write_report(regression_ctx, tmp_path / "deep" / "report.html")
    assert path.read_text(encoding="utf-8") == regression_page


def test_leaderboard_rows_in_the_pipeline_shape(classification_ctx):
    board = [
        {"rank": 2, "family": "random_forest", "log_loss": 0.31, "std": 0.04, "fit_time": 1.234, "status": "ok",
         "note": ""},
        {"rank": 1, "family": "logistic_regression", "log_loss": 0.22, "std": 0.01, "fit_time": 0.1, "status": "ok",
         "note": ""},
        {"rank": None, "family": "lightgbm", "log_loss": None, "std": None, "fit_time": 0.0, "status": "failed",
         "note": "boom"},
    ]
    page = build_report(dataclasses.replace(classification_ctx, leaderboard=board))
    assert ('<tr class="winner"><td class="num">1</td><td>logistic_regression ★</td>'
            '<td class="num">0.2200 ± 0.0100</td><td class="num">0.10</td>') in page
    assert "<td>random_forest</td><td class=\"num\">0.3100 ± 0.0400</td><td class=\"num\">1.23</td>" in page


def test_report_from_a_real_profile(classification_ctx):
    profile_module = pytest.importorskip("forgeml.data.profile")
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.loc[:9, "sepal width (cm)"] = None
    frame["copy"] = frame["petal length (cm)"]
    profile = profile_module.profile_table(frame, target="target").to_dict()
    page = build_report(dataclasses.replace(classification_ctx, profile=profile))
    assert '"x":[0.0667],"y":["sepal width (cm)"]' in page  # 10 of 150 missing
    assert "<h3>Class balance</h3>" in page and "33.3%" in page
    assert "<h3>Duplicate columns</h3>petal length (cm) = copy" in page
    for warning in profile["warnings"]:
        assert html.escape(warning) in page


def test_evaluation_notes_are_shown(regression_ctx):
    evaluation = {**regression_ctx.evaluation,
                  "validation": {**regression_ctx.evaluation["validation"], "note": "out-of-fold predictions"}}
    page = build_report(dataclasses.replace(regression_ctx, evaluation=evaluation))
    assert "validation: out-of-fold predictions" in page


def test_learning_curves_section_for_neural_models(tmp_path):
    from forgeml.report.builder import ReportContext, build_report

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e + (0.05 * e if e > 6 else 0), "val_metric": 0.5 + e / 40}
               for e in range(1, 11)]
    ctx = ReportContext(title="net", model_name="net", version=1, run_id=None, task="regression", metric="rmse",
                        target="y", created="2026-01-01", learning_curve={"history": history, "best_epoch": 6})
    html = build_report(ctx)
    assert 'id="learning"' in html and "Learning curves" in html
    assert "best epoch 6" in html and "10 epochs; early stopping kept epoch 6." in html
    without = build_report(ReportContext(title="t", model_name="t", version=1, run_id=None, task="regression",
                                         metric="rmse", target="y", created="2026-01-01"))
    assert 'id="learning"' not in without
