"""Training batches streamed from Parquet, for tables larger than memory.

    scan = scan_parquet("sales/", target="churned", classification=True)   # one pass: rows, stats, labels
    stream = ParquetStream(scan, batch_size=256, seed=0)                    # an IterableDataset of batches
    Trainer(module, config, task="classification").fit(stream, val_stream)

A stream reads one record batch at a time (pyarrow's ParquetFile.iter_batches), never a whole file,
and yields ready batches: x (B, F) float32 standardised with the scan's mean and std, missing -> 0,
and the target (class codes (B,) int64, 0/1 (B, 1) float32, or standardised values (B, 1) float32).
Row groups are the unit of order and sharding: each epoch shuffles their order from (seed, epoch),
deals them to DDP ranks and then DataLoader workers, and a bounded buffer shuffles rows across
neighbouring groups. Every rank takes the same number of steps, known from the Parquet metadata.
`fit_parquet` is what NeuralClassifier/NeuralRegressor.fit_parquet call.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from forgeml.errors import DataError, SpecError, did_you_mean

__all__ = ["ParquetScan", "ParquetStream", "batch_sizes", "fit_parquet", "scan_parquet", "shares"]

logger = logging.getLogger(__name__)

SCAN_ROWS = 16384  # rows per record batch while scanning (a few MB of float64)
MAX_LABELS = 10000  # more distinct target values than this is not a classification target
TARGETS = ("auto", "codes", "binary", "scaled")


# ----------------------------------------------------------------------------- the scan


@dataclass(frozen=True, eq=False)
class ParquetScan:
    """What one pass over Parquet data learned. Row groups are numbered in file order, then group order.

    mean, std (F,) float64: nan-aware, population std (NaN for an all-missing feature); missing (F,)
    int64: nulls and NaNs. labels (K,) sorted and label_counts (G, K) for a classification target;
    target_mean, target_std for a numeric one.
    """

    path: str
    files: tuple[str, ...]
    features: tuple[str, ...]
    target: str | None
    groups: tuple[tuple[int, int], ...]  # (file index, row group index in that file)
    group_rows: np.ndarray  # (G,) int64
    mean: np.ndarray
    std: np.ndarray
    missing: np.ndarray
    labels: np.ndarray | None = None
    label_counts: np.ndarray | None = None
    target_mean: float | None = None
    target_std: float | None = None

    @property
    def rows(self) -> int:
        return int(self.group_rows.sum())

    def scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) for standardising, as the in-memory encoder learns them: an all-missing feature
        gets mean 0, a constant or all-missing one scale 1."""
        mean = np.nan_to_num(self.mean, nan=0.0)
        scale = np.where(np.isfinite(self.std) & (self.std > 1e-12), self.std, 1.0)
        return mean, scale


def _files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".pq") and p.is_file())
        if not files:
            raise DataError(f"directory '{path}' holds no Parquet files (*.parquet, *.pq); point to a file or a folder of them")
        return files
    if not path.is_file():
        raise DataError(f"Parquet file '{path}' not found; check the path (a .parquet file or a folder of them)")
    return [path]


def _open(path: Path | str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"'{path}' cannot be read as Parquet ({str(exc).splitlines()[0]}); pass a Parquet file") from None


def _is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
        or pa.types.is_decimal(kind) or pa.types.is_null(kind)


def _type_name(kind: pa.DataType) -> str:
    """A column's Arrow type in a user's words."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "text"
    if pa.types.is_dictionary(kind):
        return "categories"
    if pa.types.is_temporal(kind):
        return f"dates/times, {kind}"
    return str(kind)


def _matrix(batch: pa.RecordBatch, names: Sequence[str]) -> np.ndarray:
    """The named columns as one (n, F) float64 array, missing values as NaN."""
    out = np.empty((batch.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        column = batch.column(name)
        out[:, j] = (column if column.type == pa.float64() else column.cast(pa.float64())).to_numpy(zero_copy_only=False)
    return out


def _floats(column: pa.Array) -> np.ndarray:
    return (column if column.type == pa.float64() else column.cast(pa.float64())).to_numpy(zero_copy_only=False)


class _Moments:
    """Running count, mean and sum of squared deviations per column (Chan et al.), nan-aware."""

    def __init__(self, width: int):
        self.count = np.zeros(width)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, x: np.ndarray) -> None:
        """Fold in a batch x (n, F) float64, NaN = missing; x is overwritten (one copy of it is made, not five)."""
        missing = np.isnan(x)
        count = (len(x) - missing.sum(axis=0)).astype(np.float64)
        x[missing] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, x.sum(axis=0) / count, 0.0)
            x -= mean
            x[missing] = 0.0
            m2 = np.einsum("ij,ij->j", x, x)
            total = self.count + count
            delta = mean - self.mean
            self.mean = np.where(total > 0, self.mean + delta * count / total, 0.0)
            self.m2 = self.m2 + m2 + np.where(total > 0, delta**2 * self.count * count / total, 0.0)
        self.count = total

    def std(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, np.sqrt(self.m2 / self.count), np.nan)


def scan_parquet(path: str | Path, features: Sequence[str] | None = None, target: str | None = None, *,
                 classification: bool = False) -> ParquetScan:
    """One streaming pass over a Parquet file or a folder of them: rows, rows per row group, per-feature
    mean/std and missing counts, and the target's sorted labels (classification) or mean/std.

    features None: every column but the target. Features must be numeric (ints, floats, bools).
    """
    files = _files(path)
    opened = [_open(f) for f in files]
    columns = list(opened[0].schema_arrow.names)
    if target is not None and target not in columns:
        raise DataError(f"target column '{target}' not found in {files[0]}{did_you_mean(target, columns)}")
    if features is None:
        features = [c for c in columns if c != target]
    elif isinstance(features, str):
        raise DataError(f"features must be a list of column names; got the string '{features}': use ['{features}']")
    features = [str(f) for f in features]
    if not features:
        raise DataError(f"no feature columns to train on in {path}; give features=[...] or a file with more columns")
    if len(set(features)) != len(features):
        raise DataError(f"features name a column twice: {sorted({f for f in features if features.count(f) > 1})}")
    if target in features:
        raise DataError(f"the target '{target}' is also listed as a feature; drop it from features")
    for file, parquet in zip(files, opened):
        schema = parquet.schema_arrow
        for name in [*features, *([target] if target is not None else [])]:
            if name not in schema.names:
                raise DataError(f"column '{name}' not found in {file}{did_you_mean(name, schema.names)}")
        text = [f"{n} ({_type_name(schema.field(n).type)})" for n in features if not _is_numeric(schema.field(n).type)]
        if text:
            raise DataError(f"feature columns must be numeric; {file} has {', '.join(text)}: encode them as numbers "
                            "first or leave them out with features=[...]")
        if target is not None and not classification and not _is_numeric(schema.field(target).type):
            raise DataError(f"a regression target must be numeric; '{target}' in {file} is "
                            f"{_type_name(schema.field(target).type)}: use NeuralClassifier for labels")

    moments, missing = _Moments(len(features)), np.zeros(len(features), dtype=np.int64)
    target_moments = _Moments(1)
    groups, group_rows, counts = [], [], []
    read = [*features, *([target] if target is not None else [])]
    for index, (file, parquet) in enumerate(zip(files, opened)):
        for group in range(parquet.num_row_groups):
            groups.append((index, group))
            group_rows.append(parquet.metadata.row_group(group).num_rows)
            seen: Counter = Counter()
            for batch in parquet.iter_batches(batch_size=SCAN_ROWS, row_groups=[group], columns=read):
                x = _matrix(batch, features)
                if np.isinf(x).any():
                    bad = [features[j] for j in np.flatnonzero(np.isinf(x).any(axis=0))]
                    raise DataError(f"feature column(s) {', '.join(bad)} in {file} hold infinite values; replace them")
                missing += np.isnan(x).sum(axis=0)
                moments.add(x)
                if target is not None:
                    _scan_target(batch.column(target), target, file, classification, seen, target_moments)
            counts.append(seen)
            pa.default_memory_pool().release_unused()  # arrow's allocator keeps freed pages otherwise
    rows = int(sum(group_rows))
    if rows == 0:
        raise DataError(f"'{path}' has no rows; a model needs data to train on")
    labels = label_counts = None
    if target is not None and classification:
        labels = _sorted_labels([label for seen in counts for label in seen], target)
        label_counts = np.array([[seen.get(label, 0) for label in labels.tolist()] for seen in counts], dtype=np.int64)
    return ParquetScan(
        path=str(path), files=tuple(str(f) for f in files), features=tuple(features), target=target,
        groups=tuple(groups), group_rows=np.asarray(group_rows, dtype=np.int64), mean=moments.mean.copy(),
        std=moments.std(), missing=missing, labels=labels, label_counts=label_counts,
        target_mean=float(target_moments.mean[0]) if target is not None and not classification else None,
        target_std=float(target_moments.std()[0]) if target is not None and not classification else None)


def _scan_target(column: pa.Array, target: str, file: Path, classification: bool, seen: Counter,
                 moments: _Moments) -> None:
    """Refuse missing target values; count labels (classification) or accumulate moments (regression)."""
    values = None if classification and not pa.types.is_floating(column.type) else _floats(column)
    if column.null_count or (values is not None and np.isnan(values).any()):
        raise DataError(f"the target '{target}' has missing values in {file}; drop or fill those rows")
    if not classification:
        if np.isinf(values).any():
            raise DataError(f"the target '{target}' has infinite values in {file}; drop or fix those rows")
        moments.add(values[:, None].copy())
        return
    if values is not None and not np.array_equal(values, np.round(values)):
        raise DataError(f"the target '{target}' holds fractional numbers (a continuous target); "
                        "use NeuralRegressor to predict numbers")
    for item in pc.value_counts(column).to_pylist():
        seen[item["values"]] += item["counts"]
    if len(seen) > MAX_LABELS:
        raise DataError(f"the target '{target}' has more than {MAX_LABELS} distinct values, too many for classes; "
                        "use NeuralRegressor to predict numbers")


def _sorted_labels(values: list[Any], target: str) -> np.ndarray:
    """The distinct labels sorted as np.unique sorts them (strings as an object array, like pandas gives)."""
    if all(isinstance(v, str) for v in values):
        return np.array(sorted(set(values)), dtype=object)
    if any(isinstance(v, str) for v in values):
        raise DataError(f"the target '{target}' mixes text and numbers across files; make it one type")
    return np.unique(np.asarray(values))


# ----------------------------------------------------------------------------- batching arithmetic


def batch_sizes(rows: int, batches: int, batch_size: int) -> list[int]:
    """`rows` split into exactly `batches` batches: full ones and a last partial one when that fits,
    otherwise near-equal ones (a shard of a few more or fewer rows than its share)."""
    if batches == 0:
        return []
    if (batches - 1) * batch_size < rows <= batches * batch_size:
        return [batch_size] * (batches - 1) + [rows - (batches - 1) * batch_size]
    q, r = divmod(rows, batches)
    return [q + 1] * r + [q] * (batches - r)


def shares(rows: Sequence[int], total: int) -> list[int]:
    """`total` batches shared among shards in proportion to their rows (largest remainder); every shard
    with rows gets at least one batch and none more batches than rows."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.sum() == 0:
        return [0] * len(rows)
    if not (rows > 0).sum() <= total <= rows.sum():
        raise DataError(f"{total} batch(es) cannot be shared by {int((rows > 0).sum())} shards of {rows.sum()} rows; "
                        "use fewer DataLoader workers or a smaller batch_size")
    exact = total * rows / rows.sum()
    quota = np.floor(exact).astype(np.int64)
    quota[(rows > 0) & (quota == 0)] = 1
    while quota.sum() > total:  # the ones forced to 1 came from the shards most above their share
        quota[np.argmax(np.where(quota > 1, quota - exact, -np.inf))] -= 1
    while quota.sum() < total:
        quota[np.argmax(np.where(quota < rows, exact - quota, -np.inf))] += 1
    return quota.tolist()


class _Buffer:
    """Rows waiting to become batches: first in, first out, or with an rng each batch is drawn at random
    from every row held (a bounded shuffle buffer). Arrays are allocated once for `capacity` rows."""

    def __init__(self, rng: np.random.Generator | None, capacity: int = 1024):
        self.rng, self.capacity, self.x, self.y, self.start, self.n = rng, capacity, None, None, 0, 0

    def add(self, x: np.ndarray, y: np.ndarray | None) -> None:
        if self.start:  # FIFO: move what is left to the front once per record batch
            self.x[: self.n] = self.x[self.start : self.start + self.n]
            if self.y is not None:
                self.y[: self.n] = self.y[self.start : self.start + self.n]
            self.start = 0
        need = self.n + len(x)
        if self.x is None or need > len(self.x):
            size = max(need if self.x is None else 2 * need, self.capacity)
            self.x = _grown(self.x, self.n, (size, *x.shape[1:]), x.dtype)
            self.y = None if y is None else _grown(self.y, self.n, (size, *y.shape[1:]), y.dtype)
        self.x[self.n : need] = x
        if y is not None:
            self.y[self.n : need] = y
        self.n = need

    def take(self, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """b rows out of the buffer, as new arrays."""
        if b > self.n:
            raise DataError("the Parquet data changed while it was read (fewer rows than its metadata says); "
                            "train on data that is not being rewritten")
        x, y, n = self.x, self.y, self.n
        if self.rng is None:
            rows = slice(self.start, self.start + b)
            self.start += b
        else:
            rows = self.rng.choice(n, size=b, replace=False)
            # Fill the holes left below the tail with the tail's rows that were not picked.
            holes = rows[rows < n - b]
            stay = np.ones(b, dtype=bool)
            stay[rows[rows >= n - b] - (n - b)] = False
            movers = np.arange(n - b, n)[stay]
        out = (x[rows].copy(), None if y is None else y[rows].copy())
        if self.rng is not None and len(holes):
            x[holes] = x[movers]
            if y is not None:
                y[holes] = y[movers]
        self.n -= b
        return out


def _grown(old: np.ndarray | None, keep: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    new = np.empty(shape, dtype=dtype)
    if old is not None and keep:
        new[:keep] = old[:keep]
    return new


# ----------------------------------------------------------------------------- the stream


class ParquetStream(IterableDataset):
    """Ready batches from the row groups of a scan, read one record batch at a time.

    stats: the scan whose mean/std, labels and target mean/std encode the data (default `scan`; give
    the training scan when streaming validation data). targets: codes (B,) int64 | binary (B, 1) float32
    | scaled (B, 1) float32 | auto (codes with labels, else scaled); without a target only x is yielded.
    training: shuffle row groups and rows from (seed, epoch) and give every rank the same number of
    batches; otherwise file order, each rank reading its own row groups. shuffle_rows bounds the buffer.
    workers: DataLoader processes the Trainer reads through (data.stream_loader; 0: in the training process).
    rank, world_size: the DDP place (default: forgeml.training.distributed.context()).
    """

    def __init__(self, scan: ParquetScan, *, batch_size: int = 128, groups: Sequence[int] | None = None,
                 stats: ParquetScan | None = None, targets: str = "auto", training: bool = True, seed: int = 0,
                 shuffle_rows: int = 65536, read_rows: int = 8192, workers: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        stats = stats or scan
        for name, value in (("batch_size", batch_size), ("read_rows", read_rows)):
            if int(value) < 1:
                raise SpecError(f"ParquetStream {name} must be at least 1; got {value}")
        if shuffle_rows < 0 or workers < 0:
            raise SpecError(f"ParquetStream shuffle_rows and workers must be >= 0; got {shuffle_rows} and {workers}")
        if targets not in TARGETS:
            raise SpecError(f"ParquetStream targets must be one of {', '.join(TARGETS)}; got '{targets}'"
                            f"{did_you_mean(str(targets), TARGETS)}")
        if tuple(stats.features) != tuple(scan.features):
            raise DataError(f"the data's features {list(scan.features)} differ from the training features "
                            f"{list(stats.features)}; stream the same columns")
        if targets == "auto":
            targets = "codes" if stats.labels is not None else "scaled"
        if scan.target is not None and targets in ("codes", "binary") and stats.labels is None:
            raise SpecError(f"targets='{targets}' needs class labels: scan the data with classification=True")
        if scan.target is not None and targets == "scaled" and stats.target_mean is None:
            raise SpecError("targets='scaled' needs a numeric target scanned with classification=False")
        if scan.target is not None and targets == "binary" and len(stats.labels) != 2:
            raise SpecError(f"targets='binary' needs two classes; the target has {len(stats.labels)}")
        self.scan, self.stats, self.targets, self.training = scan, stats, targets, training
        self.groups = np.arange(len(scan.groups)) if groups is None else np.asarray(groups, dtype=np.int64)
        if len(self.groups) and (self.groups.min() < 0 or self.groups.max() >= len(scan.groups)):
            raise SpecError(f"groups must be row-group numbers in [0, {len(scan.groups)}); got {list(groups)}")
        self.batch_size, self.seed, self.shuffle_rows = int(batch_size), int(seed), int(shuffle_rows)
        self.read_rows, self.workers, self.rank, self.world_size = int(read_rows), int(workers), rank, world_size
        self.mean, self.scale = stats.scaling()
        self.epoch, self._skip, self._labels = 0, 0, None

    # -- what the trainer asks -----------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        """Leave out the first `batches` batches of the next iteration (resume mid-epoch)."""
        if batches and self.workers:
            raise SpecError(f"a ParquetStream read by {self.workers} DataLoader workers cannot resume mid-epoch "
                            f"(after batch {batches}); resume with workers=0, or from a checkpoint written at the end "
                            "of an epoch (neural.checkpoint_every)")
        self._skip = batches

    def __len__(self) -> int:
        """Batches per epoch on this rank, from the Parquet metadata."""
        rank, world = self._place()
        if self.training:
            return math.ceil(math.ceil(self._rows(self.groups) / world) / self.batch_size)
        share, n = self._share(self.epoch, rank, world), max(self.workers, 1)
        return sum(math.ceil(self._rows(share[k::n]) / self.batch_size) for k in range(n))

    @property
    def num_samples(self) -> int:
        """Rows this rank reads in the current epoch."""
        return self._rows(self._share(self.epoch, *self._place()))

    # -- iteration -----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...] | torch.Tensor]:
        rank, world = self._place()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        share = self._share(self.epoch, rank, world)
        parts = [share[k::workers] for k in range(workers)]
        if self.training:  # this rank's fixed number of batches, shared among its workers
            quota = shares([self._rows(p) for p in parts], len(self))[worker]
        else:
            quota = math.ceil(self._rows(parts[worker]) / self.batch_size)
        sizes = batch_sizes(self._rows(parts[worker]), quota, self.batch_size)
        skip, self._skip = self._skip, 0
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker]) if self.training else None
        keep, done = self.shuffle_rows if self.training else 0, 0
        most = min(keep + self.read_rows + max(sizes, default=0), self._rows(parts[worker]))  # rows ever held
        buffer = _Buffer(rng, capacity=most)
        for x, y in self._records(parts[worker]):
            buffer.add(x, y)
            while done < len(sizes) and buffer.n >= keep + sizes[done]:
                batch = buffer.take(sizes[done])
                done += 1
                if done > skip:
                    yield self._tensors(*batch)
        while done < len(sizes):
            batch = buffer.take(sizes[done])
            done += 1
            if done > skip:
                yield self._tensors(*batch)

    def _place(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            rank, world = self.rank, self.world_size
        else:
            from forgeml.training.distributed import context

            place = context()
            rank, world = place.rank, place.world_size
        self._check(world)
        return rank, world

    def _check(self, world: int) -> None:
        """Every rank must be able to fill its batches in every epoch (row groups are dealt whole)."""
        if not self.training:
            return
        groups = len(self.groups)
        if groups < world:
            raise DataError(f"{self.scan.path} has {groups} row group(s) to train on, fewer than the {world} processes; "
                            "write it with smaller row groups (row_group_size) so each process gets one")
        batches = math.ceil(math.ceil(self._rows(self.groups) / world) / self.batch_size)
        fewest = int(np.sort(self.scan.group_rows[self.groups])[: groups // world].sum())
        if fewest < batches:
            raise DataError(f"the row groups of {self.scan.path} are too uneven for {world} processes ({batches} batches "
                            f"each, but a process may get {fewest} rows); write it with equal row groups")
        busy = min(max(self.workers, 1), math.ceil(groups / world))
        if batches < busy:
            raise DataError(f"{batches} batch(es) per epoch cannot be shared by {busy} DataLoader workers; "
                            "use fewer workers or a smaller batch_size")

    def _share(self, epoch: int, rank: int, world: int) -> np.ndarray:
        """This rank's row groups for `epoch`, in reading order."""
        groups = self.groups
        if self.training:
            groups = groups[np.random.default_rng([self.seed, epoch]).permutation(len(groups))]
        return groups[rank::world]

    def _rows(self, groups: np.ndarray) -> int:
        return int(self.scan.group_rows[groups].sum())

    def _records(self, groups: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(x (n, F) float32 standardised, encoded target or None) per record batch of the given row groups."""
        scan, opened = self.scan, {}
        read = [*scan.features, *([scan.target] if scan.target is not None else [])]
        for g in groups.tolist():
            index, group = scan.groups[g]
            if index not in opened:
                opened[index] = _open(scan.files[index])
            for batch in opened[index].iter_batches(batch_size=self.read_rows, row_groups=[group], columns=read):
                x = ((_matrix(batch, scan.features) - self.mean) / self.scale).astype(np.float32)
                x[np.isnan(x)] = 0.0
                yield x, None if scan.target is None else self._target(batch.column(scan.target))
            pa.default_memory_pool().release_unused()  # arrow's allocator keeps freed pages otherwise

    def _target(self, column: pa.Array) -> np.ndarray:
        if self.targets == "scaled":
            return ((_floats(column) - self.stats.target_mean) / self._target_scale()).astype(np.float32)[:, None]
        labels = self._label_set()
        if column.type != labels.type:
            try:
                column = column.cast(labels.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"the target '{self.scan.target}' is {column.type} here but {labels.type} in the "
                                "training data; make it one type") from None
        codes = pc.index_in(column, value_set=labels)
        if codes.null_count:
            unseen = sorted({str(v) for v, c in zip(column.to_pylist(), codes.to_pylist()) if c is None})
            raise DataError(f"the target '{self.scan.target}' has labels the training data does not: {unseen[:5]}; "
                            "drop those rows or train on data that has them")
        codes = codes.to_numpy(zero_copy_only=False).astype(np.int64)
        return codes.astype(np.float32)[:, None] if self.targets == "binary" else codes

    def _label_set(self) -> pa.Array:
        if self._labels is None:
            self._labels = pa.array(self.stats.labels.tolist())
        return self._labels

    def _target_scale(self) -> float:
        std = self.stats.target_std
        return std if std is not None and math.isfinite(std) and std > 1e-12 else 1.0

    def _tensors(self, x: np.ndarray, y: np.ndarray | None) -> tuple[torch.Tensor, ...] | torch.Tensor:
        return torch.from_numpy(x) if y is None else (torch.from_numpy(x), torch.from_numpy(y))


# ----------------------------------------------------------------------------- the estimators' entry point


def holdout_groups(group_rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(training, validation) row-group numbers: whole groups drawn from `seed` until they hold
    ceil(fraction x rows); validation None when there is nothing to hold out (fraction 0, one group)."""
    rows = int(group_rows.sum())
    wanted = math.ceil(rows * fraction)
    if wanted < 1 or len(group_rows) < 2:
        return np.arange(len(group_rows)), None
    order = np.random.default_rng(seed).permutation(len(group_rows))
    held = min(int(np.searchsorted(np.cumsum(group_rows[order]), wanted)) + 1, len(group_rows) - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def fit_parquet(estimator: Any, path: str | Path, target: str, *, features: Sequence[str] | None = None,
                validation: str | Path | None = None) -> Any:
    """Fit a NeuralClassifier/NeuralRegressor (architecture mlp) on Parquet data a record batch at a time.

    The fitted state has the form `fit` on the same table gives (input encoder with each feature's mean
    and scale, classes_ or the target's scaling), so predict, predict_proba and saving work unchanged on
    DataFrames with the same columns. validation: a second Parquet path, or None to hold out whole
    row groups (validation_fraction) when early stopping or the plateau schedule watches it.
    """
    from sklearn.base import is_classifier

    from forgeml.models.neural_base import NeuralParameterError, accuracy, binary_accuracy
    from forgeml.models.neural_inputs import InputEncoder

    owner = type(estimator).__name__
    config = estimator._prepare()
    if estimator.architecture != "mlp":
        raise NeuralParameterError(f"{owner}.fit_parquet trains architecture='mlp' only; got '{estimator.architecture}': "
                                   "use architecture='mlp', or read the data into memory and call fit")
    if estimator.categorical_features:
        raise NeuralParameterError(f"{owner}.fit_parquet takes numeric features only; categorical_features="
                                   f"{list(estimator.categorical_features)} needs fit on a DataFrame")
    classify = is_classifier(estimator)
    if classify and config.loss in ("mse", "mae", "huber"):
        raise NeuralParameterError(f"loss '{config.loss}' is for regression; a classifier takes auto, cross_entropy or bce")
    if not classify and config.loss in ("cross_entropy", "bce"):
        raise NeuralParameterError(f"loss '{config.loss}' is for classification; a regressor takes auto, mse, mae or huber")
    scan = scan_parquet(path, features, target, classification=classify)
    val_scan = None if validation is None else scan_parquet(validation, scan.features, target, classification=classify)
    seed = estimator._seed()
    kw: dict[str, Any] = {"task": "classification" if classify else "regression", "metric": None, "class_weights": None}
    if classify:
        labels = scan.labels
        if len(labels) < 2:
            raise DataError(f"the target '{target}' has one class '{labels[0]}'; a classifier needs at least two")
        if config.loss == "bce" and len(labels) != 2:
            raise NeuralParameterError(f"loss 'bce' is for two classes; the target has {len(labels)}: use cross_entropy")
        if val_scan is not None and set(val_scan.labels.tolist()) - set(labels.tolist()):
            unseen = sorted(map(str, set(val_scan.labels.tolist()) - set(labels.tolist())))
            raise DataError(f"validation labels {unseen[:5]} do not occur in the training data; drop those rows")
        sigmoid = config.loss == "bce"
        estimator.classes_, estimator.output_ = labels, "sigmoid" if sigmoid else "softmax"
        targets, n_outputs = ("binary", 1) if sigmoid else ("codes", len(labels))
        kw["metric"] = binary_accuracy if sigmoid else accuracy
    else:
        scale = scan.target_std if math.isfinite(scan.target_std) and scan.target_std > 1e-12 else 1.0
        estimator.y_ndim_, estimator.y_mean_, estimator.y_scale_ = 1, np.array([scan.target_mean]), np.array([scale])
        targets, n_outputs = "scaled", 1

    mean, scale = scan.scaling()
    width = len(scan.features)
    encoder = InputEncoder("mlp")
    encoder.state = {"kind": "tabular", "n_features": width, "numeric": list(range(width)), "categorical": [],
                     "mean": mean.tolist(), "scale": scale.tolist(), "levels": []}
    estimator.encoder_ = encoder
    estimator.n_features_in_ = width
    estimator.feature_names_in_ = np.asarray(scan.features, dtype=object)
    estimator.__dict__.pop("vocabulary_", None)

    watched = config.early_stopping is not None or config.scheduler == "plateau"
    train_groups, val_groups = np.arange(len(scan.groups)), None
    if val_scan is None and watched:
        train_groups, val_groups = holdout_groups(scan.group_rows, config.validation_fraction, seed)
        if val_groups is None and config.validation_fraction > 0:
            logger.warning("%s has one row group: training without a validation split; write it with more row groups "
                           "or pass validation=", path)
    stream = {"batch_size": config.batch_size, "targets": targets, "seed": seed}
    train = ParquetStream(scan, groups=train_groups, **stream)
    val = None
    if val_scan is not None:
        val = ParquetStream(val_scan, stats=scan, training=False, **stream)
    elif val_groups is not None:
        val = ParquetStream(scan, groups=val_groups, training=False, **stream)
    if classify and config.class_weight == "balanced":
        counts = scan.label_counts[train_groups].sum(axis=0).astype(np.float64)
        kw["class_weights"] = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1.0)), dtype=torch.float32)

    net, kwargs = estimator._net(n_outputs, float(config.dropout))
    job = {"net": (net, kwargs), "train": train, "val": val, "config": config, "seed": seed, **kw}
    logger.debug("streaming %s (%d rows, %d row groups, %d workers) into %s", path, scan.rows, len(scan.groups),
                 config.workers, kwargs)
    if config.workers > 1:
        from forgeml.training.distributed import context, launch

        place = context()
        result = fit_rank(place.rank, place.world_size, job) if place.enabled else launch(fit_rank, config.workers, job)[0]
    else:
        result = fit_rank(0, 1, job)
    from forgeml.models.nets import net_class

    module = net_class(net)(**kwargs)
    module.load_state_dict(result["weights"])
    estimator._set_trained(module, net, kwargs, result)
    return estimator


def fit_rank(rank: int, world_size: int, job: dict[str, Any]) -> dict[str, Any]:
    """Build the network and train it on the streams of `job` (see fit_parquet); run in-process or in each
    DDP process by forgeml.training.distributed.launch (the streams find their rank themselves)."""
    from forgeml.models.nets import net_class
    from forgeml.models.neural_base import _log_event, require_torch
    from forgeml.training.trainer import Trainer

    require_torch("mlp")
    path, kwargs = job["net"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job["seed"])
        module = net_class(path)(**kwargs)
    trainer = Trainer(module, job["config"], task=job["task"], class_weights=job["class_weights"], metric=job["metric"],
                      seed=job["seed"], on_event=_log_event)
    state = trainer.fit(job["train"], job["val"])
    out = {"history": list(state.history), "best_epoch": state.best_epoch, "epochs": int(state.epoch),
           "stopped_early": bool(state.stopped_early), "device": str(trainer.device)}
    if rank == 0:
        out["weights"] = {k: v.detach().to("cpu").clone() for k, v in trainer.module.state_dict().items()}
    return out
