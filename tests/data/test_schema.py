"""The predict-time schema check: column order, dtype repair, and clear errors for what cannot be repaired."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml.data.prepare import build_preprocessor
from forgeml.data.profile import infer_kinds
from forgeml.data.schema import FeatureSchema
from forgeml.errors import SchemaError
from forgeml.spec import PreprocessingSpec

FEATURES = ["age", "income", "plan", "city", "active", "signup", "review", "score_text"]


@pytest.fixture
def schema(messy) -> FeatureSchema:
    return FeatureSchema.from_frame(messy[FEATURES], infer_kinds(messy[FEATURES]))


def test_from_frame_records_kinds_dtypes_levels(schema):
    assert schema.feature_names == FEATURES
    info = {c.name: c for c in schema.columns}
    assert info["age"].kind == "numeric" and info["age"].dtype == "float64" and info["age"].nullable
    assert info["income"].nullable is False
    assert info["plan"].categories == ["basic", "enterprise", "plus", "pro"]
    assert info["active"].kind == "boolean" and info["active"].categories == ["no", "yes"]
    assert info["signup"].kind == "datetime" and info["review"].categories is None


def test_categories_are_capped():
    df = pd.DataFrame({"c": [f"v{i}" for i in range(500)] * 2})
    schema = FeatureSchema.from_frame(df, {"c": "categorical"})
    assert len(schema.columns[0].categories) == 200


def test_json_round_trip(schema):
    again = FeatureSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema


def test_validate_reorders_and_drops_extras(schema, messy):
    shuffled = messy[list(reversed(messy.columns))]
    out = schema.validate(shuffled)
    assert list(out.columns) == FEATURES
    assert out.index.equals(messy.index)
    pd.testing.assert_series_equal(out["age"], messy["age"])


def test_validate_repairs_types_sent_as_text(schema, messy):
    sent = messy[FEATURES].head(5).astype(object).astype(str)  # everything as text, like a JSON payload
    sent.loc[sent.index[0], "age"] = " 42 "
    sent.loc[sent.index[1], "age"] = ""
    out = schema.validate(sent)
    assert out["age"].dtype == "float64" and out["age"].iloc[0] == 42.0 and np.isnan(out["age"].iloc[1])
    assert out["income"].dtype == "float64"
    assert pd.api.types.is_datetime64_any_dtype(out["signup"])


def test_numeric_column_with_text_is_named(schema, messy):
    sent = messy[FEATURES].head(4).copy().astype({"age": object})
    sent.loc[sent.index[2], "age"] = "forty"
    with pytest.raises(SchemaError, match=r"column 'age' should be numeric as in training \(float64\) but has value 'forty'"):
        schema.validate(sent)


def test_bad_date_is_named(schema, messy):
    sent = messy[FEATURES].head(4).copy()
    sent.loc[sent.index[1], "signup"] = "someday"
    with pytest.raises(SchemaError, match="column 'signup' should be a date .* 'someday'"):
        schema.validate(sent)


def test_missing_columns_suggest_renamed_ones(schema, messy):
    sent = messy[FEATURES].rename(columns={"age": "Age"}).drop(columns="plan")
    with pytest.raises(SchemaError, match=r"missing column\(s\) 'age', 'plan' that the model was trained on; did you mean 'Age' for 'age'\?"):
        schema.validate(sent)


def test_empty_frame(schema, messy):
    with pytest.raises(SchemaError, match="no rows to predict on"):
        schema.validate(messy.iloc[:0])


def test_unseen_categories_pass_and_preprocessor_accepts_validated_rows(schema, messy):
    kinds = schema.kinds
    pre = build_preprocessor(kinds, PreprocessingSpec(), "classification").fit(messy[FEATURES], messy["churn"])
    sent = pd.DataFrame(
        [{"age": "33", "income": 1000, "plan": "platinum", "city": 7, "active": "YES", "signup": "2020-02-02",
          "review": None, "score_text": "0.5", "extra": "ignored"}]
    )
    out = schema.validate(sent)
    assert out["plan"].iloc[0] == "platinum" and out["city"].iloc[0] == "7"
    assert pre.transform(out).shape[1] == len(pre.get_feature_names_out())


def test_boolean_trained_as_bool_accepts_text():
    schema = FeatureSchema.from_frame(pd.DataFrame({"b": [True, False, True]}), {"b": "boolean"})
    out = schema.validate(pd.DataFrame({"b": ["yes", "False", "1"]}))
    assert out["b"].dtype == bool and out["b"].tolist() == [True, False, True]


def test_integer_column_keeps_dtype_or_widens_for_gaps():
    schema = FeatureSchema.from_frame(pd.DataFrame({"n": [1, 2, 3]}), {"n": "numeric"})
    assert schema.validate(pd.DataFrame({"n": ["4", "5"]}))["n"].dtype == "int64"
    assert schema.validate(pd.DataFrame({"n": [4, None]}))["n"].dtype == "float64"
