from __future__ import annotations

import math
import os
import signal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes

from forgeml.errors import DataError, SpecError
from forgeml.models.neural import NeuralClassifier, NeuralParameterError, NeuralRegressor
from forgeml.registry.package import TorchCodec
from forgeml.training.callbacks import Callback
from forgeml.training.checkpoint import read_meta
from forgeml.training.data import stream_loader
from forgeml.training.streaming import ParquetStream, batch_sizes, holdout_groups, scan_parquet, shares
from forgeml.training.trainer import Trainer, TrainingInterrupted
from training.helpers import accuracy, assert_same_weights, mlp, neural, weights


def _write(df: pd.DataFrame, path, rows_per_group: int):
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), str(path), row_group_size=rows_per_group)
    return path


@pytest.fixture(scope="module")
def cancer_files(tmp_path_factory):
    """breast_cancer with a text label: 450 training rows in 8 row groups (the last of 2 rows), 119 test rows."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    df = X.assign(label=np.where(y == 1, "benign", "malignant"))
    order = np.random.default_rng(0).permutation(len(df))
    train, test = df.iloc[order[:450]], df.iloc[order[450:]]
    folder = tmp_path_factory.mktemp("cancer")
    return _write(train, folder / "train.parquet", 64), train, test


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory):
    """1,000 rows in 12 row groups (11 of 90 and one of 10); the target is the row id, features have gaps."""
    rng = np.random.default_rng(1)
    n = 1000
    a = rng.normal(5, 2, n)
    a[rng.random(n) < 0.1] = np.nan
    df = pd.DataFrame({"a": a, "b": rng.integers(0, 3, n), "id": np.arange(n, dtype=np.float64)})
    return _write(df, tmp_path_factory.mktemp("ids") / "ids.parquet", 90)


def _ids(stream: ParquetStream, batches) -> np.ndarray:
    """The row ids of the batches (the target is the id, standardised by the scan's mean and std)."""
    s = stream.stats
    return np.concatenate([np.rint(y[:, 0].double().numpy() * s.target_std + s.target_mean) for _, y in batches])


# ----------------------------------------------------------------------------- the scan


def test_scan_reports_rows_row_groups_stats_missing_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(10, 3, 300), "n": pd.array(rng.integers(0, 9, 300), dtype="Int64"),
                       "flag": rng.random(300) < 0.3, "y": rng.choice(["b", "a", "c"], 300)})
    df.loc[df.index[::7], "x"] = np.nan
    df.loc[df.index[::11], "n"] = pd.NA
    (tmp_path / "parts").mkdir()
    _write(df.iloc[:200], tmp_path / "parts" / "0.parquet", 80)  # groups of 80, 80, 40
    _write(df.iloc[200:], tmp_path / "parts" / "1.parquet", 100)
    scan = scan_parquet(tmp_path / "parts", target="y", classification=True)
    assert scan.rows == 300 and scan.features == ("x", "n", "flag") and scan.group_rows.tolist() == [80, 80, 40, 100]
    values = df[["x", "n", "flag"]].astype("float64").to_numpy()
    np.testing.assert_allclose(scan.mean, np.nanmean(values, axis=0), rtol=1e-12)
    np.testing.assert_allclose(scan.std, np.nanstd(values, axis=0), rtol=1e-12)
    assert scan.missing.tolist() == [int(df.x.isna().sum()), int(df.n.isna().sum()), 0]
    assert scan.labels.tolist() == ["a", "b", "c"] and scan.labels.dtype == object
    assert scan.label_counts.sum(axis=0).tolist() == df.y.value_counts().sort_index().tolist()
    assert scan.label_counts[3].tolist() == df.y.iloc[200:].value_counts().reindex(["a", "b", "c"]).tolist()


def test_scan_of_a_regression_target(ids_file):
    scan = scan_parquet(ids_file, target="id")
    assert scan.labels is None and scan.target_mean == pytest.approx(499.5)
    assert scan.target_std == pytest.approx(np.arange(1000).std())


@pytest.mark.parametrize(("where", "kwargs", "message"), [
    ("missing.parquet", {}, "Parquet file '.*missing.parquet' not found; check the path"),
    ("ids.parquet", {"features": ["a", "B"], "target": "id"}, "column 'B' not found in .*ids.parquet; did you mean 'b'\\?"),
    ("ids.parquet", {"target": "ID"}, "target column 'ID' not found in .*; did you mean 'id'\\?"),
    ("ids.parquet", {"features": ["a", "id"], "target": "id"}, "the target 'id' is also listed as a feature"),
    ("text.parquet", {}, "feature columns must be numeric; .*text.parquet has city \\(text\\): encode them"),
    ("empty.parquet", {}, "'.*empty.parquet' has no rows"),
    ("empty_dir", {}, "directory '.*empty_dir' holds no Parquet files"),
    ("not.parquet", {}, "'.*not.parquet' cannot be read as Parquet"),
    ("gaps.parquet", {}, "the target 'y' has missing values in .*gaps.parquet; drop or fill those rows"),
    ("inf.parquet", {}, "feature column\\(s\\) a in .*inf.parquet hold infinite values"),
])
def test_bad_data_gets_one_line_data_errors(tmp_path, ids_file, where, kwargs, message):
    kwargs = {"target": "y", **kwargs}
    if where == "ids.parquet":
        path = ids_file
    else:
        path = tmp_path / where
        if where == "text.parquet":
            _write(pd.DataFrame({"a": [1.0, 2.0], "city": ["x", "y"], "y": [0.0, 1.0]}), path, 10)
        elif where == "empty.parquet":
            _write(pd.DataFrame({"a": pd.Series([], dtype=float), "y": pd.Series([], dtype=float)}), path, 10)
        elif where == "empty_dir":
            path.mkdir()
        elif where == "not.parquet":
            path.write_text("a,y\n1,2\n")
        elif where == "gaps.parquet":
            _write(pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [1.0, None, 0.0]}), path, 10)
        elif where == "inf.parquet":
            _write(pd.DataFrame({"a": [1.0, np.inf], "y": [1.0, 0.0]}), path, 10)
    with pytest.raises(DataError, match=message) as info:
        scan_parquet(path, **kwargs)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- batching


def test_batch_sizes_and_shares():
    assert batch_sizes(70, 3, 32) == [32, 32, 6]  # full batches and the rest when they fit
    assert batch_sizes(100, 3, 32) == [34, 33, 33]  # a shard with more rows than its share
    assert batch_sizes(40, 3, 32) == [14, 13, 13]
    assert shares([90, 10, 0], 5) == [4, 1, 0]  # every shard with rows gets a batch
    assert sum(shares([333, 1, 500], 27)) == 27 and shares([2, 2], 4) == [2, 2]
    with pytest.raises(DataError, match="1 batch\\(es\\) cannot be shared by 2 shards of 20 rows; use fewer"):
        shares([10, 10], 1)


def test_every_epoch_reads_every_row_once_in_a_seeded_order_that_changes_with_the_epoch(ids_file):
    stream = ParquetStream(scan_parquet(ids_file, target="id"), batch_size=32, seed=7, shuffle_rows=200)
    orders = []
    for epoch in (0, 1, 0):
        stream.set_epoch(epoch)
        batches = list(stream)
        assert len(batches) == len(stream) == 32 and [len(y) for _, y in batches] == [32] * 31 + [8]
        orders.append(_ids(stream, batches))
        assert sorted(orders[-1]) == list(range(1000))
    assert np.array_equal(orders[0], orders[2]) and not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], np.sort(orders[0]))  # rows are mixed, not read in file order
    again = ParquetStream(scan_parquet(ids_file, target="id"), batch_size=32, seed=8, shuffle_rows=200)
    assert not np.array_equal(_ids(again, list(again)), orders[0])


def test_batches_are_standardised_with_missing_values_at_zero(ids_file):
    scan = scan_parquet(ids_file, target="id")
    stream = ParquetStream(scan, batch_size=1000, training=False)
    (x, y), = list(stream)
    df = pd.read_parquet(ids_file)
    mean, scale = scan.scaling()
    expected = ((df[["a", "b"]].to_numpy() - mean) / scale).astype(np.float32)
    expected[np.isnan(expected)] = 0.0
    assert x.dtype == torch.float32 and y.shape == (1000, 1)
    np.testing.assert_array_equal(x.numpy(), expected)  # file order without training shuffling
    assert abs(float(x.numpy()[df.a.notna().to_numpy(), 0].mean())) < 1e-5


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("training", [True, False])
def test_ranks_share_the_row_groups_and_cover_every_row_exactly_once(ids_file, world, training):
    scan = scan_parquet(ids_file, target="id")
    seen, counts = [], []
    for rank in range(world):
        stream = ParquetStream(scan, batch_size=16, seed=3, training=training, rank=rank, world_size=world)
        stream.set_epoch(2)
        batches = list(stream)
        assert len(batches) == len(stream) and sum(len(y) for _, y in batches) == stream.num_samples
        seen.append(_ids(stream, batches))
        counts.append(len(batches))
    everything = np.concatenate(seen)
    assert len(everything) == 1000 and sorted(everything) == list(range(1000))
    if training:  # DDP needs every rank to take the same number of steps
        assert len(set(counts)) == 1 and counts[0] == math.ceil(math.ceil(1000 / world) / 16)


@pytest.mark.parametrize("training", [True, False])
def test_dataloader_workers_take_their_own_row_groups(ids_file, training):
    stream = ParquetStream(scan_parquet(ids_file, target="id"), batch_size=32, seed=1, workers=2, training=training)
    loader = stream_loader(stream)
    batches = list(loader)
    assert len(loader) == len(batches) == len(stream) and len(batches) in (32, 33)
    assert sorted(_ids(stream, batches)) == list(range(1000))


def test_too_many_processes_for_the_row_groups(ids_file):
    stream = ParquetStream(scan_parquet(ids_file, target="id"), batch_size=16, rank=0, world_size=13)
    with pytest.raises(DataError, match="has 12 row group\\(s\\) to train on, fewer than the 13 processes; write it"):
        len(stream)


def test_stream_settings_are_checked(ids_file, cancer_files):
    scan = scan_parquet(ids_file, target="id")
    with pytest.raises(SpecError, match="targets must be one of auto, codes, binary, scaled; got 'code'; did you mean"):
        ParquetStream(scan, targets="code")
    with pytest.raises(SpecError, match="targets='codes' needs class labels: scan the data with classification=True"):
        ParquetStream(scan, targets="codes")
    with pytest.raises(DataError, match="the data's features \\['a', 'b'\\] differ from the training features"):
        ParquetStream(scan, stats=scan_parquet(cancer_files[0], target="label", classification=True))


# ----------------------------------------------------------------------------- the trainer on a stream


def _cancer_streams(path, **settings):
    scan = scan_parquet(path, target="label", classification=True)
    train_groups, val_groups = holdout_groups(scan.group_rows, 0.2, seed=0)
    train = ParquetStream(scan, batch_size=32, groups=train_groups, seed=4, shuffle_rows=64, **settings)
    return train, ParquetStream(scan, batch_size=64, groups=val_groups, training=False)


def _trainer(init_seed: int = 0, **settings) -> Trainer:
    config = neural(**{"epochs": 6, "learning_rate": 0.01, "optimizer": "adam", "scheduler": "cosine",
                       "warmup_epochs": 1, **settings})
    return Trainer(mlp(30, 2, dropout=0.2, seed=init_seed), config, task="classification", metric=accuracy, seed=5)


def test_trainer_fits_a_stream_with_validation_early_stopping_and_a_schedule(cancer_files):
    train, val = _cancer_streams(cancer_files[0])
    trainer = Trainer(mlp(30, 2, seed=0), neural(epochs=60, learning_rate=0.01, scheduler="plateau",
                                                 early_stopping={"patience": 4}), task="classification",
                      metric=accuracy, seed=5)
    state = trainer.fit(train, val)
    assert state.batches == len(train) and state.stopped_early and state.epoch < 60
    assert set(state.history[0]) == {"epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds"}
    assert state.history[-1]["lr"] < 0.01  # the plateau schedule decayed the rate before stopping
    assert max(row["val_metric"] for row in state.history) > 0.93
    assert len(trainer.predict(val)) == val.num_samples


def test_checkpoint_every_n_epochs_resumes_a_stream_to_the_same_end(cancer_files, tmp_path):
    full = _trainer(checkpoint_every=2, epochs=5)
    full.checkpoint_dir = tmp_path
    full.fit(*_cancer_streams(cancer_files[0]))
    assert read_meta(tmp_path)["epoch"] == 4
    resumed = _trainer(checkpoint_every=2, epochs=5, init_seed=9)
    state = resumed.fit(*_cancer_streams(cancer_files[0]), resume_from=tmp_path)
    assert state.epoch == 5 and len(state.history) == 5
    assert_same_weights(resumed.module, full.module)


class SignalAt(Callback):
    """SIGINT to this process after batch `batch` of epoch `epoch` (1-based)."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def after_batch(self, state):
        if state.epoch + 1 == self.epoch and state.batch == self.batch:
            os.kill(os.getpid(), signal.SIGINT)


def test_mid_epoch_resume_is_exact_in_process_and_refused_with_workers(cancer_files, tmp_path):
    uninterrupted = _trainer()
    uninterrupted.fit(*_cancer_streams(cancer_files[0]))
    interrupted = _trainer()
    interrupted.callbacks = [SignalAt(3, 5)]
    interrupted.checkpoint_dir = tmp_path
    with pytest.raises(TrainingInterrupted, match="in epoch 3 of 6 after batch 5 of 11"):
        interrupted.fit(*_cancer_streams(cancer_files[0]))
    resumed = _trainer(init_seed=9)
    resumed.fit(*_cancer_streams(cancer_files[0]), resume_from=tmp_path)
    assert_same_weights(resumed.module, uninterrupted.module)
    with pytest.raises(SpecError, match="read by 2 DataLoader workers cannot resume mid-epoch \\(after batch 5\\); "
                                        "resume with workers=0, or from a checkpoint written at the end of an epoch"):
        _trainer().fit(*_cancer_streams(cancer_files[0], workers=2), resume_from=tmp_path)


# ----------------------------------------------------------------------------- the estimators


def test_streamed_classifier_matches_in_memory_training(cancer_files, tmp_path):
    path, train, test = cancer_files
    X_test, y_test = test.drop(columns="label"), test.label
    streamed = NeuralClassifier(epochs=30, random_state=0).fit_parquet(path, "label")
    in_memory = NeuralClassifier(epochs=30, random_state=0).fit(train.drop(columns="label"), train.label)
    assert streamed.score(X_test, y_test) > 0.93 and in_memory.score(X_test, y_test) > 0.93
    assert abs(streamed.score(X_test, y_test) - in_memory.score(X_test, y_test)) < 0.04
    ours, theirs = streamed.encoder_.to_dict(), in_memory.encoder_.to_dict()
    assert {k: v for k, v in ours.items() if k not in ("mean", "scale")} == \
        {k: v for k, v in theirs.items() if k not in ("mean", "scale")}
    np.testing.assert_allclose(ours["mean"], theirs["mean"], rtol=1e-12)
    np.testing.assert_allclose(ours["scale"], theirs["scale"], rtol=1e-12)
    assert streamed.classes_.tolist() == in_memory.classes_.tolist() == ["benign", "malignant"]
    assert list(streamed.feature_names_in_) == list(X_test.columns) and streamed.n_features_in_ == 30
    assert any("val_loss" in row for row in streamed.history_)  # whole row groups held out
    (tmp_path / "saved").mkdir()
    codec = TorchCodec()
    entry, _ = codec.save(streamed, tmp_path / "saved")
    loaded = codec.load(tmp_path / "saved", entry, set())
    np.testing.assert_array_equal(loaded.predict_proba(X_test), streamed.predict_proba(X_test))


def test_same_seed_gives_identical_weights(cancer_files):
    fits = [NeuralClassifier(epochs=2, hidden_sizes=(16,), random_state=seed).fit_parquet(cancer_files[0], "label")
            for seed in (3, 3, 4)]
    assert_same_weights(fits[0].module_, fits[1].module_)
    assert not all(torch.equal(a, b) for a, b in zip(weights(fits[0].module_).values(), weights(fits[2].module_).values()))


def test_regressor_with_a_validation_file_and_bce_classifier(tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    df = X.assign(target=y)
    _write(df.iloc[:350], tmp_path / "train.parquet", 50)
    _write(df.iloc[350:], tmp_path / "val.parquet", 50)
    model = NeuralRegressor(epochs=40, learning_rate=0.01, random_state=0).fit_parquet(
        tmp_path / "train.parquet", "target", validation=tmp_path / "val.parquet")
    assert model.y_mean_[0] == pytest.approx(y.iloc[:350].mean()) and model.y_scale_[0] == pytest.approx(y.iloc[:350].std(ddof=0))
    assert model.score(X.iloc[350:], y.iloc[350:]) > 0.3 and "val_loss" in model.history_[0]
    assert model.predict(X.iloc[:3]).shape == (3,)
    labels = df.assign(high=(y > y.median()).astype(int)).drop(columns="target")
    _write(labels, tmp_path / "labels.parquet", 100)
    clf = NeuralClassifier(epochs=3, loss="bce", class_weight="balanced", random_state=0).fit_parquet(
        tmp_path / "labels.parquet", "high", features=["bmi", "bp", "s5"])
    assert clf.output_ == "sigmoid" and clf.classes_.tolist() == [0, 1]
    assert clf.predict_proba(labels[["bmi", "bp", "s5"]]).shape == (442, 2)


def test_estimator_refusals(cancer_files, tmp_path):
    path = cancer_files[0]
    with pytest.raises(NeuralParameterError, match="NeuralClassifier.fit_parquet trains architecture='mlp' only; got 'cnn'"):
        NeuralClassifier("cnn").fit_parquet(path, "label")
    with pytest.raises(DataError, match="column 'Mean Radius' not found in .*; did you mean 'mean radius'\\?"):
        NeuralClassifier().fit_parquet(path, "label", features=["Mean Radius"])
    with pytest.raises(DataError, match="a regression target must be numeric; 'label' in .* is text: use NeuralClassifier"):
        NeuralRegressor().fit_parquet(path, "label")
    other = cancer_files[1].assign(label=np.where(cancer_files[1].label == "benign", "benign", "unknown"))
    _write(other, tmp_path / "val.parquet", 100)
    with pytest.raises(DataError, match="validation labels \\['unknown'\\] do not occur in the training data"):
        NeuralClassifier().fit_parquet(path, "label", validation=tmp_path / "val.parquet")
    _write(pd.DataFrame({"a": [1.0, 2.0], "y": ["x", "x"]}), tmp_path / "one.parquet", 10)
    with pytest.raises(DataError, match="the target 'y' has one class 'x'; a classifier needs at least two"):
        NeuralClassifier().fit_parquet(tmp_path / "one.parquet", "y")


@pytest.mark.slow
def test_two_ddp_processes_stream_their_own_row_groups(tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    _write(X.assign(target=y), tmp_path / "d.parquet", 40)
    model = NeuralRegressor(epochs=20, learning_rate=0.01, workers=2, random_state=0)
    model.fit_parquet(tmp_path / "d.parquet", "target")
    assert model.n_epochs_ >= 1 and model.score(X, y) > 0.3
