"""What the neural estimators feed their networks: X (tables, images, token ids, texts, numeric
sequences) into the arrays a network's forward takes, with the statistics learned on training data.

`InputEncoder` is fitted on the training rows only (standardisation, categorical levels, the text
vocabulary, the sequence length) and saves as JSON. It uses numpy only; the estimator makes tensors.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from forgeml.errors import DataError

DEFAULT_TEXT_LENGTH = 512  # longest text kept when max_length is not set (tokens or characters)
KINDS = ("tabular", "image", "tokens", "text", "sequence")


class InputError(DataError, ValueError):
    """X (or y) does not fit the network: a DataError for the CLI, a ValueError for scikit-learn's tools."""


class InputTypeError(InputError, TypeError):
    """X holds values that are not numbers (scikit-learn's tools expect a TypeError for that)."""


def _is_texts(X: Any) -> bool:
    """Whether X is a column of strings: a 1-D array/Series/list of str, or a one-column frame of them."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            return False
        X = X.iloc[:, 0]
    if isinstance(X, pd.Series):
        return X.dtype == object or pd.api.types.is_string_dtype(X.dtype)
    array = np.asarray(X, dtype=object) if isinstance(X, (list, tuple)) else np.asarray(X)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) == 0:
        return False
    return array.dtype.kind in "OUS" and any(isinstance(v, str) for v in array[:100])


def _numeric(X: Any, what: str) -> np.ndarray:
    """X as a float64 array; InputError naming the problem otherwise."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise InputError(f"{what} is a sparse matrix, which neural networks do not take; pass X.toarray()")
    array = np.asarray(X.to_numpy() if isinstance(X, (pd.DataFrame, pd.Series)) else X)
    if array.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {what} holds complex numbers; neural networks take real numbers")
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{what} must be numeric (encode text or categories first): {exc}") from None
    if np.isinf(array).any():
        raise InputError(f"{what} holds infinite values; replace them before training")
    return array


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(x - mean) / scale as float32, missing values at the mean (0)."""
    z = ((x - mean) / scale).astype(np.float32)
    z[np.isnan(z)] = 0.0
    return z


def _stats(x: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """nan-aware mean and std over `axis`; a constant, empty or all-missing feature gets mean 0, scale 1."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" for all-missing columns
        mean = np.nanmean(x, axis=axis)
        std = np.nanstd(x, axis=axis)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean, std


def _sequence_cells(X: Any) -> np.ndarray | None:
    """X as an (N, C) object array when its cells are sequences (lists or arrays: C step features), else None."""
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy(dtype=object)
    if not isinstance(X, np.ndarray) or X.dtype != object or X.size == 0:
        return None
    cells = X.reshape(len(X), -1) if X.ndim == 1 else X
    if cells.ndim != 2 or not all(isinstance(v, (list, tuple, np.ndarray)) for v in cells[:50].ravel()):
        return None
    return cells


def _pad_cells(cells: np.ndarray) -> np.ndarray:
    """(N, C) cells of (T_i,) or (T_i, k) numbers -> (N, T, F) float64, NaN after each sequence's end.
    The columns of a row are steps of one sequence: they are cut to the shortest of them."""
    rows = []
    for row in cells:
        parts = [np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in row]
        steps = min(len(p) for p in parts)
        rows.append(np.hstack([p[:steps] for p in parts]) if parts else np.zeros((0, 1)))
    widths = {r.shape[1] for r in rows}
    if len(widths) > 1:
        raise InputError(f"sequences have different numbers of features per step ({sorted(widths)}); give every step the same")
    T = max(max((len(r) for r in rows), default=1), 1)
    x = np.full((len(rows), T, widths.pop()), np.nan)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    return x


class InputEncoder:
    """Fitted conversion of X into network inputs, by kind:

    tabular  (N, F) numbers -> x (N, F_num) float32 standardised [, x_cat (N, C) int64 codes, 0 = unseen]
    image    (N, C, H, W), (N, H, W) or flat (N, C*H*W) with image_shape -> (N, C, H, W) float32,
             standardised per channel
    tokens   (N, T) integer ids, 0 = padding -> (ids (N, T) int64, lengths (N,) int64); ids the
             training data never reached map to 1 (unknown)
    text     (N,) strings with a tokenizer -> (ids, lengths) through a Vocabulary built on training texts
    sequence (N, T, F) or (N, T) floats -> (x (N, T, F) float32 standardised per feature, lengths);
             trailing steps that are all NaN are padding unless `lengths` is given
    """

    def __init__(
        self,
        architecture: str,
        *,
        image_shape: Any = None,
        tokenizer: str | None = None,
        vocab_size: int = 20000,
        min_frequency: int = 1,
        max_length: int | None = None,
        categorical_features: Any = None,
    ):
        self.architecture = architecture
        self.image_shape = image_shape
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.max_length = max_length
        self.categorical_features = categorical_features
        self.state: dict[str, Any] = {}
        self.vocabulary = None

    # -- fitting ----------------------------------------------------------------------------------

    def kind_of(self, X: Any) -> str:
        if self.architecture == "mlp":
            return "tabular"
        if self.architecture == "cnn":
            return "image"
        if _sequence_cells(X) is not None:
            return "sequence"
        if _is_texts(X):
            if self.tokenizer is None:
                raise InputError(
                    f"{self.architecture} got a column of texts but no tokenizer; set tokenizer='word' or 'char'"
                )
            return "text"
        if self.tokenizer is not None:
            raise InputError(f"tokenizer='{self.tokenizer}' needs a column of texts; got {_describe(X)}")
        array = np.asarray(X.to_numpy() if isinstance(X, (pd.DataFrame, pd.Series)) else X)
        if array.ndim == 2 and array.dtype.kind in "iu":
            return "tokens"
        if array.ndim in (2, 3) and array.dtype.kind in "iufb":
            return "sequence"
        raise InputError(
            f"{self.architecture} reads token ids (N, T) int, numeric sequences (N, T, F) or (N, T) float, or texts "
            f"with a tokenizer; got {_describe(X)}"
        )

    def fit(self, X: Any, lengths: Any = None) -> InputEncoder:
        kind = self.kind_of(X)
        state: dict[str, Any] = {"kind": kind}
        if kind == "tabular":
            x = _numeric(X, "mlp input")
            if x.ndim != 2:
                raise InputError(f"mlp reads a table (N, F); got an array of shape {x.shape}. Reshape your data: "
                                 "X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one row")
            if x.shape[1] == 0 or len(x) == 0:
                raise InputError(f"Found array with {len(x)} sample(s) and {x.shape[1]} feature(s) (shape={x.shape}) "
                                 "while a minimum of 1 is required.")
            cat = self._categorical_positions(X, x.shape[1])
            num = [j for j in range(x.shape[1]) if j not in cat]
            mean, scale = _stats(x[:, num], axis=(0,))
            levels = []
            for j in cat:
                column = x[:, j]
                levels.append(np.unique(column[~np.isnan(column)]).tolist())
            state.update(n_features=x.shape[1], numeric=num, categorical=cat, mean=mean.tolist(), scale=scale.tolist(),
                         levels=levels)
        elif kind == "image":
            x = self._images(X)
            mean, scale = _stats(x, axis=(0, 2, 3))
            state.update(shape=list(x.shape[1:]), mean=mean.tolist(), scale=scale.tolist())
        elif kind == "text":
            from forgeml.data.text import Vocabulary, as_texts

            texts = as_texts(X)
            self.vocabulary = Vocabulary.build(texts, tokenizer=self.tokenizer, min_frequency=self.min_frequency,
                                               max_size=self.vocab_size)
            longest = max(len(self.vocabulary.ids(t)) for t in texts)
            state.update(vocabulary=self.vocabulary.to_dict(), n_tokens=len(self.vocabulary),
                         max_length=self.max_length or max(1, min(longest, DEFAULT_TEXT_LENGTH)))
        elif kind == "tokens":
            ids = self._ids(X)
            if ids.min(initial=0) < 0:
                raise InputError(f"token ids must be >= 0 (0 pads); got {int(ids.min())}")
            state.update(n_tokens=max(int(ids.max(initial=1)) + 1, 2), max_length=self.max_length or ids.shape[1])
        else:  # sequence
            x = self._sequence(X)
            steps = self._lengths(x, lengths)
            valid = np.arange(x.shape[1])[None, :] < steps[:, None]  # (N, T)
            mean, scale = _stats(x[valid], axis=(0,))
            state.update(n_features=x.shape[2], mean=mean.tolist(), scale=scale.tolist(),
                         max_length=self.max_length or x.shape[1])
        self.state = state
        return self

    # -- transforming -----------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.state["kind"]

    def transform(self, X: Any, lengths: Any = None, *, owner: str = "the model") -> tuple[np.ndarray, ...]:
        """Network inputs for X, in the order of the network's forward arguments."""
        s, kind = self.state, self.state["kind"]
        if kind == "tabular":
            x = _numeric(X, "mlp input")
            if x.ndim != 2:
                raise InputError(f"{owner} reads a table (N, F); got an array of shape {x.shape}. Reshape your data: "
                                 "X.reshape(1, -1) for one row")
            if x.shape[1] != s["n_features"]:
                raise InputError(f"X has {x.shape[1]} features, but {owner} is expecting {s['n_features']} features as input")
            out = [_standardise(x[:, s["numeric"]], np.asarray(s["mean"]), np.asarray(s["scale"]))]
            if s["categorical"]:
                codes = np.zeros((len(x), len(s["categorical"])), dtype=np.int64)
                for i, (j, levels) in enumerate(zip(s["categorical"], s["levels"])):
                    codes[:, i] = _codes(x[:, j], np.asarray(levels, dtype=np.float64))
                out.append(codes)
            return tuple(out)
        if kind == "image":
            x = self._images(X)
            if list(x.shape[1:]) != s["shape"]:
                raise InputError(f"images have shape {list(x.shape[1:])}; the model was fitted on (C, H, W) = {s['shape']}")
            shape = (1, -1, 1, 1)
            return (_standardise(x, np.asarray(s["mean"]).reshape(shape), np.asarray(s["scale"]).reshape(shape)),)
        if kind == "text":
            from forgeml.data.text import as_texts

            if not _is_texts(X) and len(np.asarray(X)) > 0:
                raise InputError(f"this model reads texts; got {_describe(X)}")
            ids, steps = self.vocabulary.encode(as_texts(X), max_length=s["max_length"])
            return ids, steps
        if kind == "tokens":
            ids = self._ids(X)[:, : s["max_length"]]
            steps = self._lengths(ids, lengths)
            ids = np.where((ids >= 0) & (ids < s["n_tokens"]), ids, 1)  # unseen ids -> unknown
            ids[np.arange(ids.shape[1])[None, :] >= steps[:, None]] = 0
            return ids.astype(np.int64), steps
        x = self._sequence(X)[:, : s["max_length"]]
        if x.shape[2] != s["n_features"]:
            raise InputError(f"sequences have {x.shape[2]} features per step; the model was fitted on {s['n_features']}")
        steps = self._lengths(x, lengths)
        z = _standardise(x, np.asarray(s["mean"]), np.asarray(s["scale"]))
        z[np.arange(z.shape[1])[None, :] >= steps[:, None]] = 0.0
        return z, steps

    # -- what the network needs to know ------------------------------------------------------------

    def net_inputs(self) -> dict[str, Any]:
        """Constructor arguments of the network that follow from the data."""
        s, kind = self.state, self.state["kind"]
        if kind == "tabular":
            return {"n_numeric": len(s["numeric"]), "cardinalities": [len(v) + 1 for v in s["levels"]]}
        if kind == "image":
            return {"in_channels": s["shape"][0], "image_size": s["shape"][1:]}
        if kind in ("text", "tokens"):
            return {"vocab_size": s["n_tokens"], "max_length": s["max_length"]}
        return {"n_features": s["n_features"], "max_length": s["max_length"]}

    def n_features_in(self) -> int:
        s = self.state
        if s["kind"] in ("tabular", "sequence"):
            return int(s["n_features"])
        if s["kind"] == "image":
            return int(np.prod(s["shape"]))
        return 1 if s["kind"] == "text" else int(s["max_length"])

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, **self.state}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputEncoder:
        state = dict(data)
        encoder = cls(state.pop("architecture"))
        encoder.state = state
        if state["kind"] == "text":
            from forgeml.data.text import Vocabulary

            encoder.vocabulary = Vocabulary.from_dict(state["vocabulary"])
        return encoder

    # -- helpers ----------------------------------------------------------------------------------

    def _categorical_positions(self, X: Any, width: int) -> list[int]:
        if not self.categorical_features:
            return []
        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else []
        positions = []
        for c in self.categorical_features:
            if isinstance(c, str):
                if c not in names:
                    from forgeml.errors import did_you_mean

                    raise InputError(f"categorical feature '{c}' is not a column of X{did_you_mean(c, names)}")
                positions.append(names.index(c))
            elif isinstance(c, (int, np.integer)) and -width <= int(c) < width:
                positions.append(int(c) % width)
            else:
                raise InputError(f"categorical feature {c!r} is not a column index of X (it has {width} columns)")
        return sorted(set(positions))

    def _images(self, X: Any) -> np.ndarray:
        x = _numeric(X, "cnn input")
        shape = list(self.state.get("shape") or self.image_shape or [])
        if x.ndim == 2 and shape:
            shape = [1, *shape] if len(shape) == 2 else shape
            if int(np.prod(shape)) != x.shape[1]:
                raise InputError(f"image_shape {tuple(shape)} holds {int(np.prod(shape))} pixels but rows have {x.shape[1]} values")
            return x.reshape(len(x), *shape)
        if x.ndim == 3:
            return x[:, None]
        if x.ndim == 4:
            return x
        raise InputError(
            f"cnn reads images shaped (N, C, H, W) or (N, H, W), or flat rows with image_shape=(C, H, W); "
            f"got an array of shape {x.shape}"
        )

    def _ids(self, X: Any) -> np.ndarray:
        ids = np.asarray(X.to_numpy() if isinstance(X, (pd.DataFrame, pd.Series)) else X)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise InputError(f"this model reads token ids (N, T) of integers; got {_describe(X)}")
        return ids.astype(np.int64)

    def _sequence(self, X: Any) -> np.ndarray:
        cells = _sequence_cells(X)
        if cells is not None:
            return _pad_cells(cells)
        x = _numeric(X, f"{self.architecture} input")
        if x.ndim == 2:
            x = x[:, :, None]  # (N, T) -> (N, T, 1)
        if x.ndim != 3:
            raise InputError(f"{self.architecture} reads sequences (N, T, F) or (N, T); got an array of shape {x.shape}")
        return x

    def _lengths(self, x: np.ndarray, lengths: Any) -> np.ndarray:
        """Valid steps per row: given, else up to the last non-padding step (id != 0, or a step not all NaN)."""
        T = x.shape[1]
        if lengths is not None:
            steps = np.asarray(lengths, dtype=np.int64).reshape(-1)
            if len(steps) != len(x):
                raise InputError(f"lengths has {len(steps)} values for {len(x)} sequences")
            return np.clip(steps, 0, T)
        real = (x != 0) if x.ndim == 2 else ~np.isnan(x).all(axis=2)  # (N, T)
        last = T - np.argmax(real[:, ::-1], axis=1)
        return np.where(real.any(axis=1), last, 0).astype(np.int64)


def _codes(column: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Values -> 1 + their index in the sorted training levels; unseen or missing -> 0."""
    if len(levels) == 0:
        return np.zeros(len(column), dtype=np.int64)
    pos = np.clip(np.searchsorted(levels, column), 0, len(levels) - 1)
    return np.where(levels[pos] == column, pos + 1, 0).astype(np.int64)


def _describe(X: Any) -> str:
    if isinstance(X, pd.DataFrame):
        return f"a DataFrame of shape {X.shape}"
    array = np.asarray(X) if not isinstance(X, pd.Series) else X.to_numpy()
    return f"an array of shape {array.shape} and dtype {array.dtype}"
