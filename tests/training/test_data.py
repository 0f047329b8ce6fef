from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler, Subset, TensorDataset

from forgeml.training.data import EpochBatchSampler, make_loader, split_batch, tensor_rows


def _flat(sampler) -> list[int]:
    return [i for b in sampler for i in (range(b.start, b.stop) if isinstance(b, slice) else b.tolist())]


@pytest.mark.parametrize(("length", "world"), [(10, 1), (10, 2), (10, 3), (7, 4), (3, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_order_is_distributed_samplers(length, world, shuffle):
    data = list(range(length))
    for rank in range(world):
        reference = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=11)
        ours = EpochBatchSampler(length, 3, shuffle=shuffle, seed=11, rank=rank, world_size=world)
        for epoch in (0, 1, 5):
            reference.set_epoch(epoch)
            ours.set_epoch(epoch)
            assert _flat(ours) == list(reference)
        assert len(ours) == -(-len(reference) // 3)


def test_each_epoch_shuffles_differently_and_skip_resumes_mid_epoch():
    sampler = EpochBatchSampler(20, 4, shuffle=True, seed=0)
    first = [b.tolist() for b in sampler]
    sampler.set_epoch(1)
    second = [b.tolist() for b in sampler]
    assert first != second and sorted(sum(second, [])) == list(range(20))
    sampler.skip(2)
    assert [b.tolist() for b in sampler] == second[2:]
    assert [b.tolist() for b in sampler] == second  # skip applies to one iteration only


def test_in_order_on_one_process_batches_are_slices_so_rows_are_views():
    sampler = EpochBatchSampler(10, 4, shuffle=False)
    assert list(sampler) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    X = torch.arange(20.0).reshape(10, 2)
    loader, _ = make_loader(TensorDataset(X, torch.arange(10)), 4, shuffle=False)
    assert next(iter(loader))[0].data_ptr() == X.data_ptr()


def test_validation_shards_split_exactly():
    shards = [EpochBatchSampler(10, 4, shuffle=False, rank=r, world_size=3, pad=False, as_tensor=False) for r in range(3)]
    seen = sorted(i for s in shards for batch in s for i in batch)
    assert seen == list(range(10))


def test_tensor_rows_gather_through_subsets_without_copying():
    X, y = torch.arange(20.0).reshape(10, 2), torch.arange(10)
    data = Subset(Subset(TensorDataset(X, y), [9, 8, 7, 6, 5]), [4, 0])
    rows = tensor_rows(data)
    assert rows.tensors[0].data_ptr() == X.data_ptr()
    xb, yb = rows[torch.tensor([0, 1])]
    assert yb.tolist() == [5, 9] and xb.tolist() == [[10.0, 11.0], [18.0, 19.0]]
    assert tensor_rows([1, 2]) is None


def test_loader_batches_match_row_by_row_collation():
    X, y = torch.randn(13, 2), torch.arange(13)
    fast, _ = make_loader(TensorDataset(X, y), 5, shuffle=True, seed=3)
    slow, _ = make_loader(list(zip(X, y, strict=True)), 5, shuffle=True, seed=3)
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        assert torch.equal(xf, xs) and torch.equal(yf, ys)


def test_split_batch():
    x, y = torch.zeros(2, 3), torch.zeros(2)
    assert split_batch([x, y])[1] is y and split_batch([x, y])[0][0] is x
    inputs, target = split_batch([[x, x], y])
    assert len(inputs) == 2 and target is y
    inputs, target = split_batch((x, x, y))
    assert len(inputs) == 2 and target is y
    assert split_batch(x) == ((x,), None) and split_batch((x,)) == ((x,), None)
