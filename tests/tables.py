"""Generated tables with the messiness of real ones, shared by tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_churn(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A customer table: ids, dates as strings, categoricals with missing and rare levels,
    a high-cardinality city, skewed money, yes/no flags, free-text notes and a yes/no target."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    fee = np.round(rng.lognormal(3.5, 0.5, n), 2)
    plan = rng.choice(["basic", "plus", "pro", "enterprise"], n, p=[0.5, 0.3, 0.18, 0.02]).astype(object)
    plan[rng.random(n) < 0.05] = None
    calls = rng.poisson(2, n)
    premium = rng.choice(["yes", "no"], n)
    city = rng.choice([f"city_{i:02d}" for i in range(60)], n)
    start = pd.Timestamp("2020-01-01")
    signup = [(start + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d") for d in rng.integers(0, 1500, n)]
    words = ("slow billing great support cancel happy price outage upgrade refund router modem install "
             "technician contract discount invoice late fee speed wifi signal dropped call agent helpful rude "
             "waiting hours months renewal offer competitor cheaper moving address payment card failed").split()
    notes = [" ".join(rng.choice(words, rng.integers(6, 14))) for _ in range(n)]
    logit = -1.0 - 0.05 * tenure + 0.02 * (fee - 35) + 0.5 * calls - 0.8 * (premium == "yes")
    logit += np.where(plan == "basic", 0.8, 0.0)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    fee_missing = fee.copy()
    fee_missing[rng.random(n) < 0.08] = np.nan
    return pd.DataFrame({
        "customer_id": [f"C{100000 + i}" for i in range(n)],
        "signup_date": signup,
        "plan": plan,
        "city": city,
        "monthly_fee": fee_missing,
        "tenure_months": tenure,
        "support_calls": calls,
        "premium": premium,
        "notes": notes,
        "churn": churn,
    })


def make_prices(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """A regression table: numeric, categorical and date columns with missing values."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 6, n)
    district = rng.choice(["north", "south", "east", "west", "centre"], n).astype(object)
    district[rng.random(n) < 0.04] = None
    built = rng.integers(1950, 2023, n)
    price = 2000 * area + 15000 * rooms + np.where(district == "centre", 80000, 0) + 500 * (built - 1950)
    price = price + rng.normal(0, 20000, n)
    area_missing = area.copy()
    area_missing[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"area": area_missing, "rooms": rooms, "district": district, "built": built,
                         "price": np.round(price, 0)})


def make_digit_folder(root, classes=(0, 1, 2), per_class: int | None = None, size: int = 8):
    """scikit-learn's bundled digits as an image folder root/<digit>/<i>.png (grayscale, `size` pixels square)."""
    from pathlib import Path

    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    counts: dict[int, int] = {}
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        if label not in classes or (per_class is not None and counts.get(label, 0) >= per_class):
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray((image * 255 / 16).astype(np.uint8))
        if size != 8:
            picture = picture.resize((size, size), Image.Resampling.NEAREST)
        picture.save(folder / f"{i}.png")
    return root


def make_reviews(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Short product reviews whose sentiment is carried by a few words in a sea of neutral ones, with
    a numeric column that carries nothing, blank reviews and a positive / negative label."""
    rng = np.random.default_rng(seed)
    good = "great excellent love perfect happy wonderful".split()
    bad = "broken terrible refund awful disappointed useless".split()
    neutral = ("the a it this product arrived box size colour shipping price battery screen after week "
               "day use with and was my for").split()
    labels = rng.choice(["positive", "negative"], n)
    texts = []
    for label in labels:
        words = list(rng.choice(neutral, rng.integers(5, 12)))
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(good if label == "positive" else bad)))
        texts.append(" ".join(words))
    texts = np.array(texts, dtype=object)
    texts[rng.random(n) < 0.02] = None
    return pd.DataFrame({"review": texts, "stars_shown": rng.integers(1, 6, n), "sentiment": labels})


def make_trends(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Noisy series of 8 to 20 steps, each rising or falling: a list column, a per-series mean that is
    useless alone (both kinds share it), and the direction as the label."""
    rng = np.random.default_rng(seed)
    direction = rng.choice(["up", "down"], n)
    series = []
    for d in direction:
        steps = int(rng.integers(8, 21))
        slope = 0.3 if d == "up" else -0.3
        values = slope * np.arange(steps) + rng.normal(0, 0.6, steps)
        series.append((values - values.mean()).round(3).tolist())
    return pd.DataFrame({"series": series, "level": rng.normal(size=n), "direction": direction})
