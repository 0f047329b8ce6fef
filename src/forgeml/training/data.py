"""Batches for the loop: a seeded, per-epoch, rank-sharded, resumable batch sampler and loaders.

The order is DistributedSampler's (a permutation drawn from seed + epoch, padded to a multiple
of the world size, rank r taking every world_size-th index from r), so one process with batch B
sees, batch by batch, the union of what W processes with batch B/W see. Tensor datasets
(TensorDataset, and Subsets of one) are gathered a whole batch per indexing operation instead of
row by row, with no copy of the data, and iterated without a DataLoader.

A batch stream (an IterableDataset such as streaming.ParquetStream) yields ready batches and shards
itself; it stands in for the sampler too: len() (batches per epoch on this rank), set_epoch(e),
skip(n) and num_samples (rows this rank reads per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, Subset, TensorDataset

from forgeml.errors import DataError


class EpochBatchSampler(Sampler):
    """Index batches for one epoch; call set_epoch(e) before each epoch, skip(n) to resume mid-epoch.

    Yields index tensors (as_tensor; slices when in order on one process) or lists of ints, each of up
    to `batch_size` indices.
    With `pad` (training) every rank gets ceil(N / world_size) indices, so all ranks take the
    same number of steps; without it (validation) ranks split the indices exactly.
    """

    def __init__(self, length: int, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, pad: bool = True, as_tensor: bool = True):
        self.length, self.batch_size, self.shuffle, self.seed = length, batch_size, shuffle, seed
        self.rank, self.world_size, self.pad, self.as_tensor = rank, world_size, pad, as_tensor
        self.epoch = 0
        self._skip = 0
        self.num_samples = math.ceil(length / world_size) if pad else len(range(rank, length, world_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        """Leave out the first `batches` batches of the next iteration only (resume mid-epoch)."""
        self._skip = batches

    def indices(self) -> torch.Tensor:
        """This rank's indices for the current epoch, in order.  # (num_samples,) int64"""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g)
        else:
            order = torch.arange(self.length)
        if self.world_size == 1:
            return order
        if self.pad:
            total = self.num_samples * self.world_size
            if total > self.length:
                order = torch.cat([order, order.repeat(math.ceil((total - self.length) / self.length))[: total - self.length]])
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor | slice | list[int]]:
        start, self._skip = self._skip * self.batch_size, 0
        if self.as_tensor and not self.shuffle and self.world_size == 1:  # in order: slices index views, not copies
            for i in range(start, self.length, self.batch_size):
                yield slice(i, min(i + self.batch_size, self.length))
            return
        order = self.indices()
        for i in range(start, len(order), self.batch_size):
            rows = order[i : i + self.batch_size]
            yield rows if self.as_tensor else rows.tolist()


class TensorRows(Dataset):
    """A batch-indexable view of tensor data: view[rows] -> one tensor per column, rows gathered at once."""

    def __init__(self, tensors: Sequence[torch.Tensor], index: torch.Tensor | None = None):
        self.tensors = tuple(tensors)
        self.index = index  # maps positions to rows of the tensors (a Subset's indices)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.tensors[0])

    def __getitem__(self, rows: torch.Tensor | slice) -> tuple[torch.Tensor, ...]:
        if self.index is not None:
            rows = self.index[rows]
        return tuple(t[rows] for t in self.tensors)


def tensor_rows(dataset: Dataset) -> TensorRows | None:
    """A TensorRows view of a TensorDataset or a (nested) Subset of one; None for other datasets."""
    if isinstance(dataset, TensorDataset):
        return TensorRows(dataset.tensors)
    if isinstance(dataset, Subset):
        inner = tensor_rows(dataset.dataset)
        if inner is not None:
            sub = torch.as_tensor(dataset.indices, dtype=torch.int64)
            return TensorRows(inner.tensors, sub if inner.index is None else inner.index[sub])
    return None


class TensorBatches:
    """Iterates a TensorRows view in the sampler's batches; len() is the number of batches.

    Stands in for a DataLoader over tensor data with num_workers=0: the same batches, without the
    DataLoader's per-batch machinery (about 30 us a batch on CPU, 5% of a small MLP's step).
    """

    def __init__(self, rows: TensorRows, sampler: EpochBatchSampler):
        self.rows, self.sampler = rows, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors, index = self.rows.tensors, self.rows.index
        device = tensors[0].device  # data may already live on the GPU: gather it there
        for rows in self.sampler:
            if index is not None:
                rows = index[rows]
            if isinstance(rows, slice):
                yield tuple([t[rows] for t in tensors])  # views
            else:  # index_select gathers rows 2-3x faster than t[rows]
                rows = rows if rows.device == device else rows.to(device)
                yield tuple([t.index_select(0, rows) for t in tensors])


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                world_size: int = 1, pad: bool = True, pin_memory: bool = False,
                generator: torch.Generator | None = None) -> tuple[DataLoader | TensorBatches, EpochBatchSampler]:
    """Batches of `dataset` in the order of an EpochBatchSampler: TensorBatches for tensor data,
    otherwise a DataLoader (num_workers=0, default collation) with its own seeded generator.
    A batch stream orders and shards itself: it is returned as its own sampler (see stream_loader)."""
    if isinstance(dataset, IterableDataset):
        return stream_loader(dataset, pin_memory=pin_memory), dataset
    rows = tensor_rows(dataset)
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank,
                                world_size=world_size, pad=pad, as_tensor=rows is not None)
    if rows is not None:
        return TensorBatches(rows, sampler), sampler
    if generator is None:  # a DataLoader without one draws its base seed from the global torch RNG
        generator = torch.Generator()
        generator.manual_seed(seed)
    return DataLoader(dataset, batch_sampler=sampler, pin_memory=pin_memory, generator=generator), sampler


def stream_loader(stream: IterableDataset, *, pin_memory: bool = False) -> IterableDataset | DataLoader:
    """The stream itself, or a DataLoader over its `workers` processes (batch_size=None: it yields batches)."""
    missing = [name for name in ("__len__", "set_epoch", "skip", "num_samples") if not hasattr(stream, name)]
    if missing:
        raise DataError(f"{type(stream).__name__} is an IterableDataset without {', '.join(missing)}; the trainer takes "
                        "batch streams that know their length (e.g. forgeml.training.streaming.ParquetStream)")
    workers = getattr(stream, "workers", 0)
    if not workers:
        return stream
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin_memory)


class Rows:
    """Batches written in order into one CPU tensor allocated at the first batch.

    Keeping a list of per-batch tensors and concatenating them costs twice the memory and, with
    glibc's allocator, fragments the heap (the RSS of a 1M-row prediction grew by ~100 MB that way).
    """

    def __init__(self, total: int):
        self.total, self.data, self.filled = total, None, 0

    def add(self, chunk: torch.Tensor) -> None:  # (B, ...)
        if self.data is None:
            self.data = torch.empty((self.total, *chunk.shape[1:]), dtype=chunk.dtype)
        self.data[self.filled : self.filled + len(chunk)] = chunk
        self.filled += len(chunk)

    def tensor(self) -> torch.Tensor:  # (filled, ...)
        return torch.empty(0) if self.data is None else self.data[: self.filled]


def split_batch(batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """(inputs, target) from a collated batch: items are (inputs, target), inputs a tensor or a tuple
    of tensors; (x1, ..., xn, target) is read the same way and a lone tensor or (x,) as inputs only."""
    if type(batch) is tuple and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        return (batch[0],), batch[1]  # the common case, first
    if isinstance(batch, torch.Tensor):
        return (batch,), None
    batch = tuple(batch)
    if len(batch) == 1:
        return (batch[0],), None
    inputs, target = batch[:-1], batch[-1]
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = tuple(inputs[0])
    return tuple(inputs), target
