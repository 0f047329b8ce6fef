"""The fitted model a user holds: preprocessing and estimator together, with the schema they expect.

`ForgeModel` is what `forgeml.train` returns as `.model`, what `forgeml.load` gives back and what
the registry saves. Predict applies exactly the transforms fitted on the training split, after
checking the input against the training schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forgeml.errors import ForgeError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from forgeml.data.schema import FeatureSchema


@dataclass
class ForgeModel:
    """A trained forgeml model.

    pipeline: a fitted scikit-learn Pipeline, steps ("prepare", transformer) then ("model", estimator).
    schema:   the raw input columns (names, kinds, dtypes) the pipeline was fitted on.
    classes:  class labels in the order of `predict_proba` columns (classification only).
    metadata: name, version, run_id, metrics, data fingerprint, forgeml version; informational.
    """

    pipeline: Pipeline
    task: str
    target: str
    schema: FeatureSchema
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    classes: list[Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- prediction -------------------------------------------------------------------------

    def _features(self, data: pd.DataFrame | str) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            from forgeml.data.io import read_table

            data = read_table(data)
        sequence = self.metadata.get("sequence")
        if sequence and sequence["id"] in data.columns and sequence["time"] in data.columns:
            from forgeml.data.sequences import collapse_long  # a long table, as in training: one row per id

            data = collapse_long(data, sequence["id"], sequence["time"]).set_index(sequence["id"])
        return self.schema.validate(data)

    def predict(self, data: pd.DataFrame | str) -> np.ndarray:
        """Predicted labels (classification) or values (regression), one per row of `data`."""
        features = self._features(data)
        if self.threshold is not None:
            return self._cut(self.pipeline.predict_proba(features))
        return np.asarray(self.pipeline.predict(features))

    @property
    def threshold(self) -> float | None:
        """Binary models tuned for a label metric: the positive class's probability cut (else None)."""
        return self.metadata.get("threshold")

    def _cut(self, proba: np.ndarray) -> np.ndarray:
        from forgeml.tuning.threshold import label_at

        return label_at(proba[:, 1], self.threshold, list(self.classes or []))

    def predict_proba(self, data: pd.DataFrame | str) -> pd.DataFrame:
        """Class probabilities: one column per class, in `classes` order, one row per input row."""
        if self.task != "classification":
            raise ForgeError(f"predict_proba needs a classification model; '{self.name}' is a {self.task} model")
        features = self._features(data)
        proba = self.pipeline.predict_proba(features)
        return pd.DataFrame(proba, columns=list(self.classes or []), index=features.index)

    def predict_frame(self, data: pd.DataFrame | str, *, proba: bool = False) -> pd.DataFrame:
        """A frame with a `prediction` column and, with proba=True, one `proba_<class>` column per class."""
        features = self._features(data)
        out = pd.DataFrame(index=features.index)
        if proba and self.task == "classification":
            p = self.pipeline.predict_proba(features)
            classes = np.asarray(self.classes)
            out["prediction"] = self._cut(p) if self.threshold is not None else classes[np.argmax(p, axis=1)]
            for i, c in enumerate(self.classes or []):
                out[f"proba_{c}"] = p[:, i]
        elif self.threshold is not None:
            out["prediction"] = self._cut(self.pipeline.predict_proba(features))
        else:
            out["prediction"] = self.pipeline.predict(features)
        sequence = self.metadata.get("sequence")
        if sequence and features.index.name == sequence["id"]:
            out = out.reset_index()  # one prediction per sequence, named by its id
        return out

    # -- description ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "model"))

    @property
    def version(self) -> int | None:
        return self.metadata.get("version")

    @property
    def estimator(self) -> Any:
        return self.pipeline.named_steps["model"]

    def __repr__(self) -> str:
        version = f" v{self.version}" if self.version is not None else ""
        return f"ForgeModel({self.name}{version}: {self.family} {self.task}, target={self.target!r})"
