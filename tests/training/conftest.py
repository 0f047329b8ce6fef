"""Small real datasets for the trainer tests (bundled with scikit-learn, so no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler
from torch.utils.data import TensorDataset


def _split(X: np.ndarray, y: np.ndarray, y_dtype) -> tuple[TensorDataset, TensorDataset]:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    X = StandardScaler().fit(X[order[:cut]]).transform(X).astype(np.float32)
    tr, va = order[:cut], order[cut:]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(y_dtype))
    return TensorDataset(Xt[tr], yt[tr]), TensorDataset(Xt[va], yt[va])


@pytest.fixture(scope="session")
def cancer() -> tuple[TensorDataset, TensorDataset]:
    """breast_cancer: 455 train / 114 validation rows, 30 standardised features, int64 labels 0/1."""
    X, y = load_breast_cancer(return_X_y=True)
    return _split(X, y, np.int64)


@pytest.fixture(scope="session")
def diabetes() -> tuple[TensorDataset, TensorDataset]:
    """diabetes: 353 train / 89 validation rows, 10 features, standardised float32 target."""
    X, y = load_diabetes(return_X_y=True)
    return _split(X, (y - y.mean()) / y.std(), np.float32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run fastest on one intra-op thread; several spin-wait badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
