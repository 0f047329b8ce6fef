"""The preprocessor: numeric output for every column kind, unseen levels and gaps at predict time, skops round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skops.io as sio
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from forgeml.data.prepare import build_preprocessor
from forgeml.data.profile import infer_kinds
from forgeml.data.transformers import SKOPS_TRUSTED_TYPES, BooleanEncoder, CategoricalEncoder, DatetimeFeatures
from forgeml.errors import DataError
from forgeml.spec import PreprocessingSpec

FEATURES = ["age", "income", "plan", "city", "active", "signup", "review", "score_text", "mixed"]


def _dense(matrix):
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


@pytest.fixture
def parts(messy):
    kinds = infer_kinds(messy[FEATURES])
    train, new = messy.iloc[:300], messy.iloc[300:].copy()
    # predict-time surprises: unseen levels, gaps where training had none, unparseable dates
    new.loc[new.index[:6], "plan"] = "platinum"
    new.loc[new.index[:6], "city"] = "atlantis"
    new.loc[new.index[:6], "income"] = np.nan
    new.loc[new.index[6:9], "active"] = None
    new.loc[new.index[9:12], "signup"] = "not a date"
    new.loc[new.index[12:15], "review"] = None
    return kinds, train, new


@pytest.mark.parametrize(
    "options,kwargs",
    [
        ({}, {}),
        ({}, {"scale": False, "sparse_ok": False}),
        ({"categorical_encoding": "ordinal", "high_cardinality_encoding": "frequency", "scaling": "robust"}, {}),
        ({"high_cardinality_encoding": "ordinal", "categorical_imputation": "most_frequent", "outlier_clipping": 0.01,
          "numeric_imputation": "constant", "missing_indicators": False, "scaling": "minmax"}, {"sparse_ok": False}),
    ],
)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_fit_on_train_transform_messy_new_rows(parts, options, kwargs, task):
    kinds, train, new = parts
    y = train["churn"] if task == "classification" else train["spend"]
    pre = build_preprocessor(kinds, PreprocessingSpec(**options), task, seed=0, **kwargs)
    fitted = pre.fit_transform(train[FEATURES], y)
    out = pre.transform(new[FEATURES])
    assert out.shape[1] == fitted.shape[1] == len(pre.get_feature_names_out())
    assert out.shape[0] == len(new)
    assert np.isfinite(_dense(out)).all() and np.isfinite(_dense(fitted)).all()
    if not kwargs.get("sparse_ok", True):
        assert not sp.issparse(out)


def test_feature_names_are_readable(parts):
    kinds, train, _ = parts
    pre = build_preprocessor(kinds, PreprocessingSpec(), "classification").fit(train[FEATURES], train["churn"])
    names = list(pre.get_feature_names_out())
    assert "num__age" in names and "num__missingindicator_age" in names
    assert "cat__plan_basic" in names and "cat__plan___missing__" in names
    assert "cat__plan_infrequent_sklearn" in names  # enterprise is rare
    assert "cat__city" in names  # 40 levels: one target-encoded column
    assert "bool__active" in names and "date__signup_elapsed_days" in names
    assert any(n.startswith("text__review_") for n in names)


def test_elapsed_days_counts_from_training_minimum():
    train = pd.DataFrame({"d": ["2024-01-01", "2024-01-11", None]})
    parts = DatetimeFeatures(features=["elapsed_days", "dayofweek", "is_weekend"]).fit(train)
    out = parts.transform(pd.DataFrame({"d": ["2024-01-21", "2024-01-06 10:00", "garbage"]}))
    assert out[0].tolist() == [20.0, 6.0, 1.0]  # Sunday 2024-01-21
    assert out[1, 0] == pytest.approx(5 + 10 / 24) and out[1, 2] == 1.0
    assert np.isnan(out[2]).all()
    assert list(parts.get_feature_names_out()) == ["d_elapsed_days", "d_dayofweek", "d_is_weekend"]


def test_boolean_encoder_tokens_and_unseen():
    enc = BooleanEncoder().fit(pd.DataFrame({"a": ["Yes", "no", None], "b": [True, False, True], "c": ["M", "F", "M"]}))
    out = enc.transform(pd.DataFrame({"a": ["no", "maybe", "Yes"], "b": [False, None, True], "c": ["F", "M", "X"]}))
    np.testing.assert_array_equal(out, [[0, 0, 0], [np.nan, np.nan, 1], [1, 1, np.nan]])


def test_target_encoding_is_cross_fitted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": [f"level{i}" for i in rng.integers(0, 100, 400)]})
    y = pd.Series(rng.choice(["a", "b"], 400))  # pure noise: in-sample encodings would look predictive
    enc = CategoricalEncoder(high_cardinality_threshold=20, random_state=0)
    cross = enc.fit_transform(X, y)
    in_sample = enc.transform(X)
    assert cross.shape == in_sample.shape == (400, 1)
    model = LogisticRegression()
    acc_cross = model.fit(cross, y).score(cross, y)
    acc_in = model.fit(in_sample, y).score(in_sample, y)
    assert acc_cross < 0.6 < acc_in


def test_multiclass_target_encoding(iris):
    X = pd.DataFrame({"c": (iris["sepal length (cm)"] * 10).astype(int).astype(str)})
    enc = CategoricalEncoder(high_cardinality_threshold=5)
    out = enc.fit_transform(X, iris["target"])
    assert out.shape == (150, 3) and len(enc.get_feature_names_out()) == 3


def test_pandas_string_dtype_and_categorical_dtype(parts):
    kinds, train, new = parts
    train = train.astype({"plan": "category", "city": "string"})
    pre = build_preprocessor(kinds, PreprocessingSpec(), "classification")
    pre.fit(train[FEATURES], train["churn"])
    assert pre.transform(new[FEATURES]).shape[0] == len(new)


def test_inside_a_pipeline_with_clone(iris):
    kinds = infer_kinds(iris.drop(columns="target"))
    pipe = Pipeline([("prepare", build_preprocessor(kinds, PreprocessingSpec(), "classification")),
                     ("model", LogisticRegression(max_iter=500))])
    pipe = clone(pipe).fit(iris.drop(columns="target"), iris["target"])
    assert pipe.score(iris.drop(columns="target"), iris["target"]) > 0.95


def test_lightgbm_accepts_output(parts):
    lightgbm = pytest.importorskip("lightgbm")
    kinds, train, new = parts
    pre = build_preprocessor(kinds, PreprocessingSpec(), "classification", scale=False)
    X = pre.fit_transform(train[FEATURES], train["churn"])
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, train["churn"])
    assert len(model.predict(pre.transform(new[FEATURES]))) == len(new)


@pytest.mark.parametrize("sparse_ok", [True, False])
def test_skops_round_trip(parts, sparse_ok):
    kinds, train, new = parts
    pre = build_preprocessor(kinds, PreprocessingSpec(high_cardinality_encoding="frequency"), "classification",
                             sparse_ok=sparse_ok)
    pre.fit(train[FEATURES], train["churn"])
    blob = sio.dumps(pre)
    untrusted = sio.get_untrusted_types(data=blob)
    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES)
    loaded = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(_dense(loaded.transform(new[FEATURES])), _dense(pre.transform(new[FEATURES])))
    assert list(loaded.get_feature_names_out()) == list(pre.get_feature_names_out())


def test_identifiers_dropped_and_nothing_left_is_an_error(messy):
    pre = build_preprocessor({"row_id": "identifier", "age": "numeric"}, PreprocessingSpec(), "regression")
    assert pre.fit_transform(messy, messy["spend"]).shape[1] == 2  # age + its missing indicator
    with pytest.raises(DataError, match="no usable feature columns"):
        build_preprocessor({"row_id": "identifier"}, PreprocessingSpec(), "regression")


def test_all_empty_text_column_does_not_break():
    X = pd.DataFrame({"t": ["", None, "  "] * 5, "n": range(15)})
    pre = build_preprocessor({"t": "text", "n": "numeric"}, PreprocessingSpec(), "regression")
    assert pre.fit_transform(X, np.arange(15.0)).shape == (15, 1)


def test_networks_that_read_whole_inputs_get_only_that_column(tmp_path):
    from tables import make_digit_folder, make_reviews, make_trends

    from forgeml.data.images import image_folder_table

    images = image_folder_table(make_digit_folder(tmp_path / "d", classes=(0, 1), per_class=4)).assign(n=1.0)
    pre = build_preprocessor({"image": "image", "n": "numeric"}, PreprocessingSpec(), "classification", inputs="image")
    pixels = pre.fit_transform(images, images["label"])
    assert pixels.shape == (8, 64) and pre.named_transformers_["img"].image_shape_ == (1, 8, 8)
    table = build_preprocessor({"image": "image", "n": "numeric"}, PreprocessingSpec(image_size=4), "classification")
    assert table.fit_transform(images, images["label"]).shape == (8, 16 + 1)  # pixels + the numeric column

    reviews = make_reviews(20)
    text = build_preprocessor({"review": "text", "stars_shown": "numeric"}, PreprocessingSpec(), "classification",
                              inputs="sequence").fit_transform(reviews, reviews["sentiment"])
    assert text.shape == (20, 1) and isinstance(text[0, 0], str)
    trends = make_trends(20)
    cells = build_preprocessor({"series": "sequence", "level": "numeric"}, PreprocessingSpec(), "classification",
                               inputs="sequence").fit_transform(trends, trends["direction"])
    assert cells.shape == (20, 1) and cells[0, 0].ndim == 2
    summary = build_preprocessor({"series": "sequence", "level": "numeric"}, PreprocessingSpec(), "classification")
    assert summary.fit_transform(trends, trends["direction"]).shape == (20, 8 + 1)
    blob = sio.dumps(summary)
    assert set(sio.get_untrusted_types(data=blob)) <= set(SKOPS_TRUSTED_TYPES)


def test_whole_input_networks_without_their_column_are_refused():
    with pytest.raises(DataError, match="a cnn reads exactly one image column.*found none"):
        build_preprocessor({"a": "numeric"}, PreprocessingSpec(), "classification", inputs="image")
    with pytest.raises(DataError, match="rnn and transformer read one text column or sequence columns"):
        build_preprocessor({"a": "numeric", "b": "categorical"}, PreprocessingSpec(), "classification", inputs="sequence")
    with pytest.raises(DataError, match="found 2 text columns"):
        build_preprocessor({"a": "text", "b": "text"}, PreprocessingSpec(), "classification", inputs="sequence")
