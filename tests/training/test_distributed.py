from __future__ import annotations

import pytest
import torch

from forgeml.errors import TrainingError
from forgeml.training.checkpoint import read_meta
from forgeml.training.distributed import DistContext, context, launch
from training.helpers import ddp_fit, fails_on_rank_1


def test_two_processes_with_half_batches_match_one_process_with_full_batches(tmp_path):
    """2 processes x batch 8 == 1 process x batch 16, 4 epochs of SGD with momentum on a small MLP.

    Each step both see the same 16 rows (the shared permutation, split by rank) and DDP averages the two
    half-batch mean gradients, which is the full-batch mean. Only the order of float32 additions differs
    (two partial sums, then an all-reduce), a rounding difference of ~1e-7 relative per step; over 32
    steps it stays far below the tolerance of atol 1e-5 / rtol 1e-4 used here. Each rank starts from a
    different initialisation on purpose: DDP must broadcast rank 0's weights.
    """
    one = ddp_fit(0, 1, 16, 4)
    two = launch(ddp_fit, 2, 8, 4, tmp_path)
    assert [r["ddp"] for r in two] == [True, True] and not one["ddp"]
    assert two[0]["batches"] == two[1]["batches"] == one["batches"] == 4
    for key, expected in one["weights"].items():
        assert torch.equal(two[0]["weights"][key], two[1]["weights"][key])  # ranks stay in lockstep
        torch.testing.assert_close(two[0]["weights"][key], expected, atol=1e-5, rtol=1e-4)
    for ours, reference in zip(two[0]["history"], one["history"], strict=True):
        assert ours["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-4)  # averaged over ranks
        assert ours["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-4)
    assert two[0]["history"] == [{**row, "seconds": two[0]["history"][i]["seconds"]} for i, row in enumerate(two[1]["history"])]
    assert "epoch" in two[0]["events"] and two[1]["events"] == []  # progress events from rank 0 only
    assert read_meta(tmp_path)["epoch"] == 4 and read_meta(tmp_path)["world_size"] == 2


def test_launch_reports_a_worker_failure_and_runs_one_worker_in_process():
    with pytest.raises(TrainingError, match="distributed training failed: rank 1: ValueError: rank one broke"):
        launch(fails_on_rank_1, 2)
    assert launch(lambda rank, world: (rank, world), 1) == [(0, 1)]


def test_single_process_context():
    assert context() == DistContext(0, 1, 0) and not context().enabled
