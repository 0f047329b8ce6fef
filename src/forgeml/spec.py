"""The declarative spec: the single source of truth for defaults, validation and error messages.

A spec is loaded from YAML (`load_spec`), built from keyword arguments or CLI flags
(`build_spec`), or both (flags override the file). Every other module reads its settings
from these models and invents no defaults of its own. `init_template` renders the
commented YAML that `forgeml init` prints, straight from the field definitions below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forgeml.errors import SpecError, did_you_mean

Task = Literal["auto", "classification", "regression"]
ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "image", "sequence", "identifier"]
DatetimePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "is_weekend", "elapsed_days"]

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Section):
    """Where the data comes from and what to learn."""

    source: str | None = Field(
        None,
        description="file path (csv, tsv, parquet, jsonl, json, xlsx), SQLAlchemy URL with `query`, or sklearn://NAME",
    )
    target: str | None = Field(None, description="column to predict")
    task: Task = Field("auto", description="classification | regression | auto (inferred from the target)")
    query: str | None = Field(None, description="SQL query, when source is a database URL")
    sheet: str | int | None = Field(None, description="Excel sheet name or index (default: the first)")
    ignore_columns: list[str] = Field(default_factory=list, description="columns never used as features")
    id_columns: list[str] = Field(default_factory=list, description="identifier columns: kept out of the features")
    column_kinds: dict[str, ColumnKind] = Field(
        default_factory=dict, description="override inferred kinds, e.g. {zip: categorical}"
    )
    sequence_id: str | None = Field(
        None, description="a long table of sequences: the column naming each sequence (one row per step)"
    )
    sequence_time: str | None = Field(None, description="with sequence_id: the column ordering the steps")

    @model_validator(mode="after")
    def _sequence_pair(self) -> DataSpec:
        if (self.sequence_id is None) != (self.sequence_time is None):
            raise ValueError("sequence_id and sequence_time go together: set both or neither")
        return self


class PreprocessingSpec(_Section):
    """How raw columns become features; fitted on the training split only and saved in the model."""

    numeric_imputation: Literal["median", "mean", "most_frequent", "constant"] = Field(
        "median", description="fill for missing numbers: median | mean | most_frequent | constant (0)"
    )
    categorical_imputation: Literal["most_frequent", "constant"] = Field(
        "constant", description="fill for missing categories: most_frequent | constant (a '__missing__' level)"
    )
    missing_indicators: bool = Field(True, description="add a 0/1 column for each numeric column with missing values")
    scaling: Literal["standard", "robust", "minmax", "none"] = Field(
        "standard", description="numeric scaling: standard | robust | minmax | none (tree models ignore it)"
    )
    categorical_encoding: Literal["onehot", "ordinal"] = Field(
        "onehot", description="encoding of low-cardinality categories: onehot | ordinal"
    )
    high_cardinality_encoding: Literal["target", "frequency", "ordinal"] = Field(
        "target", description="encoding of categories with many levels: target (cross-fitted) | frequency | ordinal"
    )
    high_cardinality_threshold: int = Field(20, ge=2, description="a categorical column with more levels is high-cardinality")
    rare_category_min_count: int = Field(
        5, ge=1, description="levels seen fewer times in training are grouped into one 'rare' level"
    )
    datetime_features: list[DatetimePart] = Field(
        default_factory=lambda: ["year", "month", "day", "dayofweek", "hour", "elapsed_days"],
        description="parts extracted from datetime columns",
    )
    text_max_features: int = Field(1000, ge=1, description="TF-IDF vocabulary size for each text column")
    image_size: int | list[int] | None = Field(
        None, description="resize images to this (side, or [height, width]); null: their most common size, at most 64x64 pixels"
    )

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: Any) -> Any:
        sides = [value] if isinstance(value, int) else value
        if sides is not None and (len(sides) not in (1, 2) or any(side < 1 for side in sides)):
            raise ValueError("image_size is a positive side or [height, width]")
        return value
    outlier_clipping: float | None = Field(
        None, gt=0, lt=0.5, description="clip numbers to the [q, 1-q] training quantiles, e.g. 0.01 (null: off)"
    )
    drop_duplicate_rows: bool = Field(False, description="drop exact duplicate rows before splitting")


class SplitSpec(_Section):
    """Train / validation / test split."""

    train: float = Field(0.70, gt=0, lt=1, description="fraction of rows for training")
    validation: float = Field(0.15, ge=0, lt=1, description="fraction for validation (model selection, early stopping)")
    test: float = Field(0.15, ge=0, lt=1, description="fraction held out for the final, untouched evaluation")
    strategy: Literal["auto", "random", "stratified", "group", "time"] = Field(
        "auto",
        description="auto: stratified for classification, group when group_column is set, time when time_column is set",
    )
    group_column: str | None = Field(None, description="rows sharing a value stay in one split")
    time_column: str | None = Field(None, description="split in time order: train on the past, test on the future")
    folds: int = Field(5, ge=2, description="folds for cross-validation (model selection on small data)")
    repeats: int = Field(1, ge=1, description="repeat cross-validation with reshuffled folds; predictions are averaged")
    seed: int | None = Field(None, description="split seed (default: the spec's seed)")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + validation + test must sum to 1 (got {self.train} + {self.validation} + {self.test} = {total:g})"
            )
        if self.strategy == "group" and not self.group_column:
            raise ValueError("strategy 'group' needs group_column")
        if self.strategy == "time" and not self.time_column:
            raise ValueError("strategy 'time' needs time_column")
        if self.repeats > 1 and (self.strategy == "time" or (self.strategy == "auto" and self.time_column)):
            raise ValueError("repeats > 1 reshuffles folds, which time-ordered splits cannot do; set repeats to 1")
        return self


class ModelChoice(_Section):
    """One model family and the hyperparameters that override its defaults."""

    family: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        from forgeml.models.zoo import family_names

        names = family_names()
        if value not in names:
            raise ValueError(f"unknown model family '{value}'{did_you_mean(value, names)} (known: {', '.join(names)})")
        return value


class TrainingSpec(_Section):
    """Budget and objective."""

    time_limit: float | None = Field(60, gt=0, description="seconds for the whole run, fitting included (null: no limit)")
    metric: str | None = Field(
        None, description="metric to optimise (default: roc_auc for binary, log_loss for multiclass, rmse for regression)"
    )
    preset: Literal["fast", "balanced", "best"] = Field(
        "balanced", description="models: auto tries fast (a few cheap families), balanced (a portfolio, tuning of "
        "the leader, an ensemble) or best (more variants, more tuning)"
    )
    refit: bool = Field(True, description="refit the winner on train + validation before the test evaluation")
    validation: Literal["auto", "holdout", "cv"] = Field(
        "auto",
        description="model selection on the validation split (holdout) or by k-fold CV over train + validation "
        "(cv); auto: cv up to 20,000 rows of tables, holdout for images and sequences",
    )
    cv_max_rows: int = Field(20_000, ge=1, description="with validation auto, the largest train + validation size that uses cv")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from forgeml.evaluation.metrics import metric_names

        names = metric_names()
        if value not in names:
            raise ValueError(f"unknown metric '{value}'{did_you_mean(value, names)} (known: {', '.join(names)})")
        return value


class EarlyStoppingSpec(_Section):
    """Stop when the monitored validation quantity stops improving."""

    monitor: str = Field("val_loss", description="val_loss | val_metric | train_loss")
    patience: int = Field(10, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")
    restore_best: bool = Field(True, description="end with the weights of the best epoch")


class NeuralSpec(_Section):
    """Training controls for the neural families (mlp, cnn, rnn, transformer, autoencoder)."""

    epochs: int = Field(100, ge=1, description="maximum passes over the training data")
    batch_size: int = Field(128, ge=1, description="rows per optimiser step (per process with workers > 1)")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("adamw", description="sgd | adam | adamw | rmsprop")
    learning_rate: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty (decoupled for adamw)")
    l1: float = Field(0.0, ge=0, description="L1 penalty on the weights, added to the loss")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum for sgd and rmsprop")
    nesterov: bool = Field(False, description="Nesterov momentum for sgd")
    scheduler: Literal["none", "step", "cosine", "onecycle", "plateau"] = Field(
        "none", description="learning-rate schedule: none | step | cosine | onecycle | plateau"
    )
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up epochs before the schedule")
    step_size: int = Field(10, ge=1, description="epochs between decays for the step schedule")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor for step and plateau schedules")
    plateau_patience: int | None = Field(
        None, ge=1, description="epochs without improvement before the plateau schedule decays (null: half the early-stopping patience)"
    )
    loss: Literal["auto", "cross_entropy", "bce", "mse", "mae", "huber"] = Field(
        "auto", description="auto: cross_entropy for classification, mse for regression"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing for cross_entropy")
    class_weight: Literal["none", "balanced"] = Field("none", description="weight classes by inverse frequency")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout probability in the networks")
    early_stopping: EarlyStoppingSpec | None = Field(
        default_factory=EarlyStoppingSpec, description="null to train for all epochs"
    )
    validation_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of the training rows held out for early stopping inside fit"
    )
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value (null: off)")
    grad_accumulation: int = Field(1, ge=1, description="batches accumulated per optimiser step")
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it, off on CPU"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N | mps")
    checkpoint_every: int = Field(0, ge=0, description="write a resumable checkpoint every N epochs (0: only on interrupt)")
    max_time: float | None = Field(
        None, gt=0, description="stop a fit after this many seconds, keeping the best epoch (AutoML sets it from the time limit)"
    )
    workers: int = Field(1, ge=1, description="data-parallel processes (DDP: gloo on CPU, NCCL on GPU)")


class TuningSpec(_Section):
    """Hyperparameter search (`forgeml tune`): one family, trials in a study that several processes share."""

    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="tpe (Bayesian, multivariate) | random | grid (every combination of the space)"
    )
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="stop hopeless trials early: median | hyperband (successive halving) | none"
    )
    trials: int = Field(50, ge=1, description="finished trials the study aims for, over every worker")
    time_limit: float | None = Field(
        None, gt=0, description="seconds for the search (null: training.time_limit); the refit and registration follow"
    )
    workers: int = Field(1, ge=1, description="processes running trials here; other machines join with `forgeml tune ... --join`")
    study: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="study name (null: NAME-FAMILY); trials add up across runs of one study"
    )
    grid_points: int = Field(5, ge=2, description="values per numeric range in grid search")
    report_every: int = Field(20, ge=1, description="LightGBM: trees between the scores a trial reports to the pruner")
    spaces: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="search spaces by family, over the zoo's: ranges {low, high, log}, choices [a, b], fixed values, "
        "conditions (when), e.g. {svm: {kernel: [rbf, linear], gamma: {low: 0.0001, high: 1, log: true, when: {kernel: rbf}}}}",
    )

    @field_validator("spaces")
    @classmethod
    def _valid_spaces(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from forgeml.models.zoo import family_names, get_family
        from forgeml.tuning.search import parse_space

        names = family_names()
        for family, space in value.items():
            if family not in names:
                raise ValueError(f"unknown model family '{family}'{did_you_mean(family, names)} (known: {', '.join(names)})")
            try:
                parse_space(space, get_family(family).space)
            except SpecError as exc:
                raise ValueError(f"{family} {exc}") from None
        return value


class OutputSpec(_Section):
    """What is registered."""

    name: str = Field("model", pattern=MODEL_NAME_PATTERN, description="registered model name (letters, digits, _ . -)")
    report: bool = Field(True, description="write the self-contained HTML report")
    description: str | None = Field(None, description="free text stored with the model version")


class Spec(_Section):
    """A whole forgeml job."""

    seed: int = Field(42, description="one seed for splits, models and every library that takes a random_state")
    data: DataSpec = Field(default_factory=DataSpec)
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    models: Literal["auto"] | list[ModelChoice] = Field(
        "auto", description="auto (the zoo, fastest strong families first) or a list of families"
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    neural: NeuralSpec = Field(default_factory=NeuralSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @field_validator("models", mode="before")
    @classmethod
    def _models_shorthand(cls, value: Any) -> Any:
        # `models: [lightgbm, random_forest]` and `models: lightgbm,random_forest` are shorthands.
        if isinstance(value, str) and value != "auto":
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [{"family": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def split_seed(self) -> int:
        return self.seed if self.split.seed is None else self.split.seed


# ----------------------------------------------------------------------------- loading


def _format_errors(exc: ValidationError, where: str) -> str:
    """One line per problem, each naming the field path, the problem and the received value."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "literal")))
        loc = re.sub(r"\.(list|union|tagged-union)\[[^\]]*\]", "", loc)
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][-1])
            parent = _section_for(err["loc"][:-1])
            hint = did_you_mean(field, parent.model_fields) if parent else ""
            allowed = f" (allowed: {', '.join(parent.model_fields)})" if parent and not hint else ""
            parts.append(f"unknown field '{loc}'{hint}{allowed}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":  # a regex says little; the field says what it accepts
            parent = _section_for(err["loc"][:-1])
            field = parent.model_fields.get(str(err["loc"][-1])) if parent else None
            if field is not None and field.description:
                msg = f"expected {field.description}"
        received = err.get("input")
        shown = "" if isinstance(received, (dict, list)) or err["type"] == "value_error" else f" (got {received!r})"
        parts.append(f"{loc or 'spec'}: {msg}{shown}")
    return f"invalid spec{where}: " + "; ".join(parts)


def _section_for(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Spec
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None if not isinstance(part, int) else model
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            for c in candidates:
                nested += [a for a in getattr(c, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def spec_from_dict(raw: dict[str, Any], *, where: str = "") -> Spec:
    """Validate a plain dict into a Spec, raising SpecError with every problem on one line."""
    if not isinstance(raw, dict):
        raise SpecError(f"invalid spec{where}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, where)) from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file '{path}' not found; create one with `forgeml init > {path.name}`")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"spec file '{path}' is not valid YAML{where}: {problem}") from None
    return spec_from_dict(raw, where=f" ({path})")


# Keyword arguments accepted by `build_spec` / `forgeml.train` and the spec field each sets.
OVERRIDES: dict[str, tuple[str, str]] = {
    "source": ("data", "source"),
    "target": ("data", "target"),
    "task": ("data", "task"),
    "query": ("data", "query"),
    "sheet": ("data", "sheet"),
    "ignore_columns": ("data", "ignore_columns"),
    "id_columns": ("data", "id_columns"),
    "time_limit": ("training", "time_limit"),
    "metric": ("training", "metric"),
    "refit": ("training", "refit"),
    "validation": ("training", "validation"),
    "preset": ("training", "preset"),
    "sequence_id": ("data", "sequence_id"),
    "sequence_time": ("data", "sequence_time"),
    "name": ("output", "name"),
    "report": ("output", "report"),
    "description": ("output", "description"),
    "group_column": ("split", "group_column"),
    "time_column": ("split", "time_column"),
    "split_strategy": ("split", "strategy"),
    "epochs": ("neural", "epochs"),
    "batch_size": ("neural", "batch_size"),
    "device": ("neural", "device"),
    "workers": ("neural", "workers"),
    "sampler": ("tuning", "sampler"),
    "pruner": ("tuning", "pruner"),
    "trials": ("tuning", "trials"),
    "tuning_workers": ("tuning", "workers"),
    "study": ("tuning", "study"),
}


def build_spec(base: Spec | dict[str, Any] | str | Path | None = None, **overrides: Any) -> Spec:
    """A Spec from a base (file, dict or Spec) with keyword overrides applied; None values are ignored.

    Keywords are those of OVERRIDES plus `seed` and `models`; unknown ones raise SpecError.
    """
    if base is None:
        raw: dict[str, Any] = {}
    elif isinstance(base, Spec):
        raw = base.model_dump(mode="python", exclude_unset=True)
    elif isinstance(base, dict):
        raw = dict(base)
    else:
        raw = load_spec(base).model_dump(mode="python", exclude_unset=True)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("seed", "models"):
            raw[key] = value
        elif key in OVERRIDES:
            section, field = OVERRIDES[key]
            raw.setdefault(section, {})
            raw[section] = {**raw[section], field: value}
        else:
            allowed = ", ".join(sorted([*OVERRIDES, "seed", "models"]))
            raise SpecError(f"unknown option '{key}'{did_you_mean(key, [*OVERRIDES, 'seed', 'models'])} (allowed: {allowed})")
    return spec_from_dict(raw)


# ----------------------------------------------------------------------------- `forgeml init`


def init_template() -> str:
    """The commented YAML spec with every field at its default, rendered from the models above."""
    lines = [
        "# forgeml spec: every field shows its default. Run it with `forgeml train --spec spec.yaml`.",
        "# CLI flags (--target, --time-limit, --name, ...) override the values here.",
        f"seed: {Spec.model_fields['seed'].default}",
    ]
    for section_name in ("data", "preprocessing", "split", "models", "training", "neural", "tuning", "output"):
        field = Spec.model_fields[section_name]
        if section_name == "models":
            lines += [
                "",
                f"# {field.description}; e.g. [lightgbm, {{family: random_forest, params: {{n_estimators: 500}}}}]",
                "models: auto",
            ]
            continue
        section = field.annotation
        lines += ["", f"# {section.__doc__.strip()}", f"{section_name}:"]
        instance = section()
        for name, sub in section.model_fields.items():
            if sub.description:
                lines.append(f"  # {sub.description}")
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            dumped = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
            dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"  {name}: {dumped}")
    return "\n".join(lines) + "\n"
