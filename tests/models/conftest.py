"""Generated data for the neural tests: sequences and sentences with a planted rule."""

from __future__ import annotations

import numpy as np
import pytest


def order_tokens(n: int, seed: int, T: int = 12, vocab: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, T) padded with 0, lengths 6..T; label 1 when token 3 comes before token 4.

    Both marker tokens appear once at random places among random filler ids (5..vocab-1), so the
    label depends on order only: a bag of tokens is at chance.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, T + 1, n)
    X = np.zeros((n, T), dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    for i, length in enumerate(lengths):
        X[i, :length] = rng.integers(5, vocab, length)
        a, b = rng.choice(length, 2, replace=False)
        X[i, a], X[i, b] = 3, 4
        y[i] = int(a < b)
    return X, y


def trends(n: int, seed: int, T: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy numeric series (n, T, 1) of lengths 8..T, NaN-padded; label 'up' or 'down' by slope sign."""
    rng = np.random.default_rng(seed)
    slope = rng.choice([-1.0, 1.0], n) * rng.uniform(0.05, 0.15, n)
    X = (slope[:, None] * np.arange(T)[None] + rng.normal(0, 0.4, (n, T)))[:, :, None]
    lengths = rng.integers(8, T + 1, n)
    for i, length in enumerate(lengths):
        X[i, length:] = np.nan
    return X.astype(np.float32), np.where(slope > 0, "up", "down"), lengths


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small nets train as fast on one thread, and a busy shared machine cannot stall an OpenMP barrier."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GOOD = ["great", "excellent", "love", "perfect", "wonderful", "happy"]
BAD = ["broken", "terrible", "refund", "awful", "disappointed", "useless"]
FILLER = ["the", "product", "arrived", "box", "it", "was", "and", "my", "order", "with", "this", "item", "today"]


def reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Sentences of filler words with one or two sentiment words; label by which list they come from."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        positive = bool(rng.integers(2))
        words = list(rng.choice(FILLER, rng.integers(4, 10)))
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(GOOD if positive else BAD)))
        texts.append(" ".join(words).capitalize() + rng.choice([".", "!", ""]))
        labels.append("positive" if positive else "negative")
    return texts, np.array(labels)


@pytest.fixture(scope="session")
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.15, random_state=0, stratify=y)


@pytest.fixture(scope="session")
def order_data():
    """(train, test) of the token-order task: ((X, y), (X, y))."""
    return order_tokens(1200, seed=1), order_tokens(400, seed=2)


@pytest.fixture(scope="session")
def trend_data():
    """(train, test) of the trend task: ((X, y, lengths), (X, y, lengths))."""
    return trends(600, seed=3), trends(300, seed=4)


@pytest.fixture(scope="session")
def review_data():
    """(train, test) of generated reviews: ((texts, labels), (texts, labels))."""
    return reviews(600, seed=5), reviews(300, seed=6)
