"""forgeml: from raw data to a trained, evaluated, versioned and served model.

    import forgeml
    result = forgeml.train("churn.csv", target="churn", time_limit=60, name="churn")
    model = forgeml.load("churn@latest")
    model.predict_proba(new_rows)

Names are imported lazily so that `import forgeml` and `forgeml --help` stay instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "forgeml.pipeline",
    "tune": "forgeml.tuning.tune",
    "predict": "forgeml.pipeline",
    "evaluate": "forgeml.pipeline",
    "profile": "forgeml.pipeline",
    "load": "forgeml.pipeline",
    "TrainResult": "forgeml.pipeline",
    "ForgeModel": "forgeml.model",
    "AutoClassifier": "forgeml.estimators",
    "AutoRegressor": "forgeml.estimators",
    "Spec": "forgeml.spec",
    "load_spec": "forgeml.spec",
    "ForgeError": "forgeml.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml' has no attribute '{name}'")
    return getattr(import_module(module), name)
