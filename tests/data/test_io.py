"""read_table, data_fingerprint and source_label on real files and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from forgeml.data.io import data_fingerprint, read_table, source_label
from forgeml.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 2.0]})


# ----------------------------------------------------------------------------- formats


def test_bundled_classification_targets_are_class_names(iris):
    assert iris.shape == (150, 5)
    assert set(iris["target"]) == {"setosa", "versicolor", "virginica"}
    cancer = read_table("sklearn://breast_cancer")
    assert set(cancer["target"]) == {"malignant", "benign"}
    assert read_table("sklearn://wine")["target"].nunique() == 3


def test_bundled_regression_and_digits(diabetes):
    assert pd.api.types.is_float_dtype(diabetes["target"])
    digits = read_table("sklearn://digits")
    assert digits.shape == (1797, 65) and set(digits["target"]) == set(range(10))


def test_unknown_bundled_dataset_suggests_name():
    with pytest.raises(DataError, match=r"did you mean 'iris'.*available: sklearn://iris"):
        read_table("sklearn://irs")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".tab", ".csv.gz", ".parquet", ".jsonl", ".ndjson", ".xlsx"])
def test_round_trip_formats(tmp_path, frame, suffix):
    path = tmp_path / f"data{suffix}"
    if suffix in (".csv", ".csv.gz"):
        frame.to_csv(path, index=False)
    elif suffix in (".tsv", ".tab"):
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_excel(path, index=False)
    df = read_table(path)
    assert list(df.columns) == ["a", "b", "c"]
    assert df["a"].tolist() == [1, 2, 3]
    assert df["b"].iloc[0] == "x" and pd.isna(df["b"].iloc[2])
    assert np.isnan(df["c"].iloc[1])


def test_json_records_and_lines_are_both_detected(tmp_path):
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    (tmp_path / "records.json").write_text(json.dumps(records))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "columns.json").write_text(json.dumps({"a": [1, 2], "b": ["x", "y"]}))
    for name in ("records.json", "lines.json", "columns.json"):
        df = read_table(tmp_path / name)
        assert df["a"].tolist() == [1, 2] and df["b"].tolist() == ["x", "y"], name


def test_jsonl_nested_objects_are_flattened(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1, "m": {"k": 2}}\n{"a": 3, "m": {"k": 4}}\n')
    assert read_table(tmp_path / "x.jsonl")["m.k"].tolist() == [2, 4]


def test_bad_json_line_is_named(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(DataError, match=r"line 2 of '.*x\.jsonl'"):
        read_table(tmp_path / "x.jsonl")


def test_excel_sheet_by_name_and_unknown_sheet(tmp_path, frame):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        frame.to_excel(writer, sheet_name="first", index=False)
        frame.assign(a=[7, 8, 9]).to_excel(writer, sheet_name="Second", index=False)
    assert read_table(path, sheet="Second")["a"].tolist() == [7, 8, 9]
    assert read_table(path, sheet=1)["a"].tolist() == [7, 8, 9]
    with pytest.raises(DataError, match=r"sheet 'second' not found.*did you mean 'Second'.*sheets: first, Second"):
        read_table(path, sheet="second")


def test_sqlite_query(tmp_path, frame):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        frame.to_sql("orders", conn, index=False)
    df = read_table(f"sqlite:///{db}", query="SELECT a, b FROM orders WHERE a > 1")
    assert df["a"].tolist() == [2, 3]
    with pytest.raises(DataError, match=r"give a query too: --query \"SELECT \* FROM orders\".*tables: orders"):
        read_table(f"sqlite:///{db}")
    with pytest.raises(DataError, match="no such table: nope"):
        read_table(f"sqlite:///{db}", query="SELECT * FROM nope")
    with pytest.raises(DataError, match="returned no rows"):
        read_table(f"sqlite:///{db}", query="SELECT * FROM orders WHERE a > 100")


def test_sqlite_missing_database_is_not_created(tmp_path):
    with pytest.raises(DataError, match="database file .* not found"):
        read_table(f"sqlite:///{tmp_path / 'none.db'}", query="SELECT 1")
    assert not (tmp_path / "none.db").exists()


def test_dataframe_passes_through_as_copy(frame):
    df = read_table(frame)
    df.loc[0, "a"] = 100
    assert frame.loc[0, "a"] == 1


def test_integer_column_names_become_strings():
    df = read_table(pd.DataFrame(np.ones((2, 2))))
    assert list(df.columns) == ["0", "1"]


# ----------------------------------------------------------------------------- bad input


def test_missing_file_suggests_close_name(tmp_path, frame):
    frame.to_csv(tmp_path / "sales.csv", index=False)
    with pytest.raises(DataError, match=r"data file '.*sales\.cvs' not found; did you mean 'sales\.csv'\?"):
        read_table(str(tmp_path / "sales.cvs"))
    with pytest.raises(DataError, match=r"data file 'nowhere/x\.csv' not found"):
        read_table("nowhere/x.csv")


def test_ragged_csv_names_the_line(tmp_path):
    path = tmp_path / "rag.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")
    with pytest.raises(DataError, match=r"'.*rag\.csv' line 4 has 4 fields but the header has 3"):
        read_table(path)
    every_row = tmp_path / "rag2.csv"
    every_row.write_text("a,b\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="line 2 has 3 fields but the header has 2"):
        read_table(every_row)


@pytest.mark.parametrize("content,message", [("", "is empty"), ("a,b\n", "has a header but no rows")])
def test_empty_files(tmp_path, content, message):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_unknown_extension_lists_formats(tmp_path):
    (tmp_path / "x.foo").write_text("a\n1\n")
    with pytest.raises(DataError, match=r"unsupported format '\.foo' \(supported: \.csv, \.tsv"):
        read_table(tmp_path / "x.foo")


def test_corrupt_parquet_gives_one_line_reason(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"cannot read parquet file '.*bad\.parquet': .*magic bytes") as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_duplicate_column_names_rejected():
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match="duplicate column names 'a'"):
        read_table(frame)


def test_non_utf8_csv_is_read_as_latin1(tmp_path):
    (tmp_path / "l.csv").write_bytes("name,v\nJosé,1\n".encode("latin-1"))
    assert read_table(tmp_path / "l.csv")["name"].iloc[0] == "José"


def test_gzip_jsonl(tmp_path):
    with gzip.open(tmp_path / "x.jsonl.gz", "wt") as handle:
        handle.write('{"a": 1}\n{"a": 2}\n')
    assert read_table(tmp_path / "x.jsonl.gz")["a"].tolist() == [1, 2]


# ----------------------------------------------------------------------------- fingerprint and labels


def test_fingerprint_is_content_based(frame):
    fp = data_fingerprint(frame)
    assert fp["rows"] == 3 and fp["columns"] == 3 and set(fp["schema"]) == {"a", "b", "c"}
    reindexed = frame.set_axis([10, 11, 12])
    assert data_fingerprint(reindexed)["hash"] == fp["hash"]
    assert data_fingerprint(frame.copy(deep=True))["hash"] == fp["hash"]
    assert data_fingerprint(pd.DataFrame(frame.to_dict("list")))["hash"] == fp["hash"]
    changed = frame.copy()
    changed.loc[1, "a"] = 5
    assert data_fingerprint(changed)["hash"] != fp["hash"]
    assert data_fingerprint(frame.rename(columns={"a": "z"}))["hash"] != fp["hash"]


def test_fingerprint_is_stable_across_processes(iris):
    code = "from forgeml.data.io import read_table, data_fingerprint; print(data_fingerprint(read_table('sklearn://iris'))['hash'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == data_fingerprint(iris)["hash"]


def test_source_labels(tmp_path):
    assert source_label(tmp_path / "x.csv") == "x.csv"
    assert source_label("data/y.parquet") == "y.parquet"
    assert source_label("sklearn://iris") == "sklearn://iris"
    assert source_label(pd.DataFrame()) == "DataFrame"
    assert source_label("sqlite:///x.db") == "sqlite:///x.db"
    assert "secret" not in source_label("postgresql://me:secret@host/db")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl", ".json", ".xlsx", ".csv.gz"])
def test_write_table_round_trips(tmp_path, frame, suffix):
    from forgeml.data.io import write_table

    path = write_table(frame, tmp_path / f"out{suffix}")
    back = read_table(path)
    assert back["a"].tolist() == [1, 2, 3] and back["b"].iloc[1] == "y"


def test_write_table_unknown_format(tmp_path, frame):
    from forgeml.data.io import write_table

    with pytest.raises(DataError, match=r"unsupported format '\.txt'"):
        write_table(frame, tmp_path / "out.txt")


def test_an_image_folder_reads_as_paths_and_labels(tmp_path):
    pytest.importorskip("PIL")
    from tables import make_digit_folder

    root = make_digit_folder(tmp_path / "digits", classes=(3, 8), per_class=5)
    table = read_table(root)
    assert list(table.columns) == ["image", "label"] and len(table) == 10
    assert sorted(table["label"].unique()) == ["3", "8"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is a folder, not a data file.*image folder"):
        read_table(tmp_path / "empty")
