"""Reading tables from files, databases and bundled datasets into pandas DataFrames.

`read_table` is the one entry point: a path (csv, tsv, parquet, jsonl, json, xlsx), a SQLAlchemy URL
with a query, `sklearn://NAME`, or a DataFrame. Every problem a user can fix becomes a one-line
`DataError` naming the source and the fix; `data_fingerprint` gives the content hash used for lineage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forgeml.errors import DataError, did_you_mean

log = logging.getLogger(__name__)

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
}
COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
BUNDLED = ("iris", "wine", "breast_cancer", "digits", "diabetes")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_REMOTE_SCHEMES = {"http", "https", "s3", "gs", "gcs", "az", "abfs", "file"}


def read_table(
    source: str | Path | pd.DataFrame, *, query: str | None = None, sheet: str | int | None = None
) -> pd.DataFrame:
    """Read `source` into a DataFrame (rows x columns, column names as strings).

    source: a file path, a SQLAlchemy URL (with `query`), `sklearn://NAME`, or a DataFrame (copied).
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        label = "DataFrame"
        if len(df) == 0:
            raise DataError("the DataFrame given as data has no rows")
    elif isinstance(source, (str, Path)):
        text = str(source).strip()
        if not text:
            raise DataError("no data source given; pass a file path, a database URL or sklearn://NAME")
        match = _URL.match(text) if isinstance(source, str) else None
        scheme = match.group(1).lower() if match else None
        if scheme == "sklearn":
            df = _read_bundled(text[len("sklearn://") :])
        elif scheme is not None and scheme not in _REMOTE_SCHEMES:
            df = _read_sql(text, query)
        else:
            if query is not None:
                log.warning("ignoring query for file source '%s' (queries apply to database URLs)", text)
            df = _read_file(text if scheme else Path(text), sheet)
        label = source_label(source)
    else:
        raise DataError(
            f"cannot read data from a {type(source).__name__}; pass a file path, a database URL, "
            "sklearn://NAME or a pandas DataFrame"
        )
    return _tidy_columns(df, label)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` (without its index) in the format its extension names: csv, tsv, parquet, jsonl, json, xlsx."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    ext = (suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")) or ""
    fmt = FORMATS.get(ext)
    if fmt is None or (compressed and fmt not in ("csv", "tsv", "jsonl")) or ext == ".xls":
        writable = ", ".join(e for e in FORMATS if e != ".xls")
        raise DataError(f"cannot write '{path}': unsupported format '{ext or path.name}' (supported: {writable})")
    if not path.parent.is_dir():
        raise DataError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    try:
        if fmt in ("csv", "tsv"):
            df.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
        elif fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt == "jsonl":
            df.to_json(path, orient="records", lines=True, date_format="iso")
        elif fmt == "json":
            df.to_json(path, orient="records", date_format="iso", indent=1)
        else:
            df.to_excel(path, index=False)
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"cannot write '{path}': {_first_line(exc)}") from None
    return path


def source_label(source: Any) -> str:
    """A short human label for a source: the file name, 'sklearn://iris', 'DataFrame', a URL without password."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    if isinstance(source, Path):
        return source.name
    text = str(source).strip()
    match = _URL.match(text)
    if match is None:
        return Path(text).name or text
    scheme = match.group(1).lower()
    if scheme == "sklearn" or scheme in _REMOTE_SCHEMES:
        return text
    try:
        from sqlalchemy.engine import make_url

        return make_url(text).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a label must never fail
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", text)


def data_fingerprint(df: pd.DataFrame) -> dict[str, Any]:
    """Content hash of a frame: {"hash": sha256 hex, "rows", "columns", "schema": {column: dtype}}.

    Stable across processes and memory layouts: it hashes values row by row (not the index),
    then column names and dtypes.
    """
    digest = hashlib.sha256()
    schema = {str(c): str(t) for c, t in df.dtypes.items()}
    digest.update(json.dumps(list(schema.items())).encode())
    digest.update(str(len(df)).encode())
    for column in df.columns:
        digest.update(_column_hash(df[column]).tobytes())
    return {"hash": digest.hexdigest(), "rows": int(len(df)), "columns": int(df.shape[1]), "schema": schema}


def _column_hash(series: pd.Series) -> np.ndarray:
    try:
        return pd.util.hash_pandas_object(series, index=False, categorize=True).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts): hash their text
        return pd.util.hash_pandas_object(series.astype(str), index=False).to_numpy()


# ----------------------------------------------------------------------------- files


def _read_file(path: str | Path, sheet: str | int | None) -> pd.DataFrame:
    shown = str(path)
    suffixes = [s.lower() for s in Path(shown).suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in COMPRESSIONS else None
    ext = (suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")) or ""
    if isinstance(path, Path):
        if path.is_dir():
            from forgeml.data.images import image_folder_table, is_image_folder

            if any(path.glob("*.parquet")):
                return _guard(lambda: pd.read_parquet(path), shown, "parquet")
            if is_image_folder(path):  # root/<label>/<image>: columns image (file path) and label
                return image_folder_table(path)
            raise DataError(f"'{shown}' is a folder, not a data file; pass a file inside it, a folder of Parquet "
                            "files, or an image folder (one subfolder of images per class)")
        if not path.is_file():
            raise DataError(f"data file '{shown}' not found{_file_hint(path)}")
    fmt = FORMATS.get(ext)
    if fmt is None:
        supported = ", ".join(FORMATS)
        what = f"unsupported format '{ext}'" if ext else "no file extension"
        raise DataError(f"cannot read '{shown}': {what} (supported: {supported}, optionally compressed with .gz)")
    if isinstance(path, Path) and path.stat().st_size == 0:
        raise DataError(f"data file '{shown}' is empty")
    if fmt in ("csv", "tsv"):
        df = _read_csv(path, shown, "\t" if fmt == "tsv" else ",", compression)
    elif fmt == "parquet":
        df = _guard(lambda: pd.read_parquet(path), shown, "parquet")
    elif fmt == "jsonl":
        df = _records_frame(_read_json_lines(path, shown), shown)
    elif fmt == "json":
        df = _read_json(path, shown)
    else:
        df = _read_excel(path, shown, sheet)
    if df.shape[1] == 0:
        raise DataError(f"data file '{shown}' has no columns")
    if len(df) == 0:
        raise DataError(f"data file '{shown}' has a header but no rows")
    return df


def _file_hint(path: Path) -> str:
    folder = path.parent
    if not folder.is_dir():
        return f" (folder '{folder}' does not exist)"
    names = [p.name for p in folder.iterdir() if p.is_file()]
    hint = did_you_mean(path.name, names)
    if not hint:
        same_stem = [n for n in names if Path(n).stem.lower() == path.stem.lower()]
        hint = did_you_mean(same_stem[0], same_stem) if same_stem else ""
    return hint


def _guard(read, shown: str, fmt: str) -> pd.DataFrame:
    """Run a reader, turning library errors into a one-line DataError."""
    try:
        return read()
    except DataError:
        raise
    except ImportError as exc:
        raise DataError(f"reading {fmt} file '{shown}' needs an extra package: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - readers raise many types for corrupt input
        raise DataError(f"cannot read {fmt} file '{shown}': {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).strip()


def _read_csv(path: str | Path, shown: str, sep: str, compression: str | None) -> pd.DataFrame:
    def read(encoding: str) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=sep, index_col=False, low_memory=False, encoding=encoding)

    try:
        try:
            return read("utf-8-sig")
        except UnicodeDecodeError:
            log.warning("'%s' is not valid UTF-8; reading it as latin-1", shown)
            return read("latin-1")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{shown}' is empty") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        line = None if compression else _first_ragged_line(Path(path), sep)
        if line is not None:
            number, expected, got = line
            raise DataError(
                f"data file '{shown}' line {number} has {got} fields but the header has {expected}; "
                "fix that row (a stray delimiter or an unquoted value?)"
            ) from None
        raise DataError(f"cannot parse '{shown}': {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read csv file '{shown}': {_first_line(exc)}") from None


def _first_ragged_line(path: Path, sep: str) -> tuple[int, int, int] | None:
    """(line number, header fields, row fields) of the first row longer than the header."""
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.reader(handle, delimiter=sep)
            header = next(reader, None)
            if header is None:
                return None
            for row in reader:
                if len(row) > len(header):
                    return reader.line_num, len(header), len(row)
    except (OSError, csv.Error):
        return None
    return None


def _read_json_lines(path: str | Path, shown: str) -> list[Any]:
    records = []
    try:
        with _open_text(path, shown) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"invalid JSON on line {number} of '{shown}': {exc.msg}") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read '{shown}': {_first_line(exc)}") from None
    return records


def _read_json(path: str | Path, shown: str) -> pd.DataFrame:
    try:
        with _open_text(path, shown) as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read '{shown}': {_first_line(exc)}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line
            return _records_frame(_read_json_lines(path, shown), shown)
        raise DataError(f"invalid JSON in '{shown}' at line {exc.lineno}: {exc.msg}") from None
    if isinstance(obj, dict):
        values = list(obj.values())
        if values and all(isinstance(v, (list, dict)) for v in values):
            return _guard(lambda: pd.DataFrame(obj), shown, "json")
        obj = [obj]
    return _records_frame(obj, shown)


def _records_frame(records: Any, shown: str) -> pd.DataFrame:
    if not isinstance(records, list) or not records:
        raise DataError(f"data file '{shown}' holds no records; expected an array of objects or one object per line")
    if not all(isinstance(r, dict) for r in records):
        bad = next(r for r in records if not isinstance(r, dict))
        raise DataError(f"data file '{shown}' must hold objects (one per row); found {type(bad).__name__} {bad!r:.40}")
    return pd.json_normalize(records)


def _open_text(path: str | Path, shown: str):
    openers = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
    suffix = Path(str(path)).suffix.lower()
    try:
        if suffix in openers:
            module = __import__(openers[suffix])
            return module.open(path, "rt", encoding="utf-8-sig")
        if suffix in COMPRESSIONS:
            raise DataError(f"cannot read '{shown}': {suffix} compression is supported for csv and tsv only")
        return open(path, encoding="utf-8-sig")  # noqa: SIM115 - returned to a with-block
    except OSError as exc:
        raise DataError(f"cannot open '{shown}': {exc.strerror or exc}") from None


def _read_excel(path: str | Path, shown: str, sheet: str | int | None) -> pd.DataFrame:
    try:
        return pd.read_excel(path, sheet_name=0 if sheet is None else sheet)
    except ImportError as exc:
        raise DataError(f"reading '{shown}' needs an extra package ({_first_line(exc)}); or save it as .xlsx") from None
    except (ValueError, IndexError, KeyError) as exc:
        names = _sheet_names(path)
        absent = names is not None and (
            (isinstance(sheet, int) and not -len(names) <= sheet < len(names))
            or (isinstance(sheet, str) and sheet not in names)
        )
        if absent:
            hint = did_you_mean(str(sheet), names) if isinstance(sheet, str) else ""
            raise DataError(f"sheet {sheet!r} not found in '{shown}'{hint} (sheets: {', '.join(names)})") from None
        raise DataError(f"cannot read excel file '{shown}': {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read excel file '{shown}': {_first_line(exc)}") from None


def _sheet_names(path: str | Path) -> list[str] | None:
    try:
        with pd.ExcelFile(path) as book:
            return [str(n) for n in book.sheet_names]
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------- databases


def _read_sql(url: str, query: str | None) -> pd.DataFrame:
    label = source_label(url)
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("reading from a database needs SQLAlchemy: pip install sqlalchemy") from None
    try:
        parsed = sa.engine.make_url(url)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"'{label}' is not a valid database URL: {_first_line(exc)}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db_path = Path(parsed.database)
        if not db_path.is_file():
            raise DataError(f"database file '{parsed.database}' not found{_file_hint(db_path)}")
    if not query or not str(query).strip():
        tables = _sqlite_tables(parsed) if parsed.get_backend_name() == "sqlite" else []
        example = tables[0] if tables else "my_table"
        listing = f" (tables: {', '.join(tables[:10])})" if tables else ""
        raise DataError(
            f"source '{label}' is a database URL; give a query too: --query \"SELECT * FROM {example}\" "
            f"or data.query in the spec{listing}"
        )
    try:
        engine = sa.create_engine(parsed)
    except Exception as exc:  # noqa: BLE001 - missing driver, bad dialect
        raise DataError(f"cannot connect to '{label}': {_first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            df = pd.read_sql(sa.text(query), conn)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"query on '{label}' failed: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"query on '{label}' returned no rows; check the query: {query}")
    return df


def _sqlite_tables(parsed: Any) -> list[str]:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(parsed)
        try:
            return sorted(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - only a hint
        return []


# ----------------------------------------------------------------------------- bundled datasets


def _read_bundled(name: str) -> pd.DataFrame:
    """A scikit-learn toy dataset: feature columns plus `target` (class names as strings for classification)."""
    key = name.strip().strip("/").lower().removeprefix("load_")
    if key not in BUNDLED:
        raise DataError(
            f"unknown bundled dataset 'sklearn://{name}'{did_you_mean(key, BUNDLED)} "
            f"(available: {', '.join('sklearn://' + b for b in BUNDLED)})"
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{key}")(as_frame=True)
    frame = bunch.frame.copy() if bunch.frame is not None else bunch.data.assign(target=bunch.target)
    if key in ("iris", "wine", "breast_cancer"):
        names = np.asarray(bunch.target_names, dtype=object)
        frame["target"] = pd.Series(names[frame["target"].to_numpy()], index=frame.index, dtype="str")
    elif key == "digits":
        frame["target"] = frame["target"].astype("int64")
    return frame


def _tidy_columns(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Column names as strings, and no duplicates (every later stage selects columns by name)."""
    if not all(isinstance(c, str) for c in df.columns):
        df.columns = [str(c) for c in df.columns]
    duplicated = df.columns[df.columns.duplicated()].unique().tolist()
    if duplicated:
        names = ", ".join(f"'{c}'" for c in duplicated[:5])
        raise DataError(f"{label} has duplicate column names {names}; rename them so each column is unique")
    if df.shape[1] == 0:
        raise DataError(f"{label} has no columns")
    return df
