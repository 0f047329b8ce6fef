"""Numeric sequences from long tables and list columns: padded (N, T, F), lengths, ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.data.sequences import (
    SequenceCells,
    collapse_long,
    SequenceSummary,
    is_sequence_column,
    sequences_from_lists,
    sequences_from_long,
)
from forgeml.errors import DataError


@pytest.fixture
def long() -> pd.DataFrame:
    return pd.DataFrame({
        "sensor": ["b", "a", "a", "b", "a", "b", "b"],
        "t": [2, 3, 1, 1, 2, 3, 4],
        "temp": [20.0, 13.0, 11.0, 19.0, 12.0, 21.0, 22.0],
        "load": [0.2, 0.3, 0.1, 0.1, 0.2, 0.3, 0.4],
    })


def test_long_table_into_padded_sequences_in_time_order(long):
    X, lengths, ids = sequences_from_long(long, "sensor", "t", ["temp", "load"])
    assert X.shape == (2, 4, 2) and X.dtype == np.float32
    assert ids.tolist() == ["a", "b"] and lengths.tolist() == [3, 4]
    assert X[0, :, 0].tolist() == [11.0, 12.0, 13.0, 0.0]  # sorted by time, padded with 0
    assert X[1, :, 0].tolist() == [19.0, 20.0, 21.0, 22.0]


def test_max_length_keeps_the_most_recent_steps_and_pad_value(long):
    X, lengths, _ = sequences_from_long(long, "sensor", "t", "temp", max_length=2, pad_value=np.nan)
    assert X.shape == (2, 2, 1) and lengths.tolist() == [2, 2]
    assert X[:, :, 0].tolist() == [[12.0, 13.0], [21.0, 22.0]]


def test_missing_columns_suggest_the_closest(long):
    with pytest.raises(DataError, match="value column 'Temp' not found; did you mean 'temp'"):
        sequences_from_long(long, "sensor", "t", ["Temp"])
    with pytest.raises(DataError, match="id column 'sensr' not found; did you mean 'sensor'"):
        sequences_from_long(long, "sensr", "t", "temp")
    with pytest.raises(DataError, match="is not numeric"):
        sequences_from_long(long.assign(temp=long["temp"].astype(str)), "sensor", "t", "temp")


def test_list_column_of_numbers_lists_and_json_text():
    X, lengths, ids = sequences_from_lists(pd.Series([[1, 2, 3], [4], None], index=[10, 11, 12]))
    assert X.shape == (3, 3, 1) and lengths.tolist() == [3, 1, 0] and ids.tolist() == [10, 11, 12]
    X, lengths, _ = sequences_from_lists(["[[1, 2], [3, 4]]", "[[5, 6]]"])
    assert X.shape == (2, 2, 2) and X[1, 0].tolist() == [5.0, 6.0] and lengths.tolist() == [2, 1]


@pytest.mark.parametrize(("cells", "message"), [
    ([], "empty"),
    ([[1, 2], [[1, 2], [3, 4]]], "different numbers of features"),
    (["not json"], "not a JSON list"),
    ([["a", "b"]], "not a list of numbers"),
])
def test_bad_list_columns(cells, message):
    with pytest.raises(DataError, match=message):
        sequences_from_lists(pd.Series(cells, dtype=object))


def test_sequence_columns_are_lists_arrays_or_their_json_text():
    assert is_sequence_column(pd.Series([[1, 2], [3.5]]))
    assert is_sequence_column(pd.Series([np.arange(3), np.arange(5)]))
    assert is_sequence_column(pd.Series(["[1, 2, 3]", "[[1, 2], [3, 4]]"]))
    assert not is_sequence_column(pd.Series(["[draft] notes", "plain"]))
    assert not is_sequence_column(pd.Series([1.0, 2.0]))
    assert not is_sequence_column(pd.Series([], dtype=object))


def test_cells_parse_every_form_and_keep_each_sequence_whole():
    X = pd.DataFrame({"a": [[1, 2, 3], "[4, 5]", None], "b": [np.array([1.0, 1, 1]), [2, 2], []]})
    cells = SequenceCells().fit(X).transform(X)
    assert cells.shape == (3, 2) and cells.dtype == object
    assert cells[0, 0].shape == (3, 1) and cells[1, 0].tolist() == [[4.0], [5.0]] and cells[2, 0].shape == (0, 1)
    assert list(SequenceCells().fit(X).get_feature_names_out(["a", "b"])) == ["a", "b"]
    with pytest.raises(DataError, match="not a JSON list"):
        SequenceCells().fit(X).transform(pd.DataFrame({"a": ["[1,"], "b": [[1]]}))


def test_summary_statistics_per_sequence():
    X = pd.DataFrame({"s": [[1.0, 2.0, 4.0], [5.0], []]})
    summary = SequenceSummary().fit(X)
    out = summary.transform(X)
    names = list(summary.get_feature_names_out(["s"]))
    assert names == ["s_length", "s_mean", "s_std", "s_min", "s_max", "s_first", "s_last", "s_slope"]
    row = dict(zip(names, out[0], strict=True))
    assert row["s_length"] == 3 and row["s_mean"] == pytest.approx(7 / 3) and row["s_slope"] == pytest.approx(1.5)
    assert out[1, 0] == 1 and out[1, -1] == 0.0  # one step: no slope
    assert out[2, 0] == 0 and np.isnan(out[2, 1:]).all()  # empty: length 0, the rest imputed downstream
    with pytest.raises(DataError, match="2 features per step; training had 1"):
        summary.transform(pd.DataFrame({"s": [[[1, 2], [3, 4]]]}))


def test_a_long_table_collapses_to_one_row_per_sequence(long):
    table = long.assign(site=["north", "south", "south", "north", "south", "north", "north"],
                        label=["hot", "cold", "cold", "hot", "cold", "hot", "hot"])
    out = collapse_long(table, "sensor", "t", target="label")
    assert out["sensor"].tolist() == ["a", "b"] and out["label"].tolist() == ["cold", "hot"]
    assert out["temp"].tolist() == [[11.0, 12.0, 13.0], [19.0, 20.0, 21.0, 22.0]]  # steps in time order
    assert out["site"].tolist() == ["south", "north"]
    with pytest.raises(DataError, match="the target changes within sequence 'a'; one label per sequence"):
        collapse_long(table.assign(label=["x", "y", "z", "x", "y", "x", "x"]), "sensor", "t", target="label")
    with pytest.raises(DataError, match="column 'site' changes within sequence"):
        collapse_long(table.assign(site=list("abcdefg")), "sensor", "t")
    with pytest.raises(DataError, match="sequence time column 'sensr' not found; did you mean 'sensor'"):
        collapse_long(table, "sensor", "sensr")
