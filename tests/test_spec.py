"""The spec: defaults, YAML loading, overrides, and one-line errors naming the field and the fix."""

from __future__ import annotations

import pytest
import yaml

from forgeml.errors import SpecError
from forgeml.spec import Spec, build_spec, init_template, load_spec, spec_from_dict


def test_defaults_are_the_documented_ones():
    spec = Spec()
    assert (spec.split.train, spec.split.validation, spec.split.test) == (0.70, 0.15, 0.15)
    assert spec.models == "auto"
    assert spec.training.time_limit == 60
    assert spec.split_seed == spec.seed == 42


def test_init_template_round_trips_to_the_defaults(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(init_template())
    assert load_spec(path) == Spec()
    assert "# fraction of rows for training" in init_template()


def test_yaml_with_models_shorthand(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"source": "x.csv", "target": "y"},
        "models": ["lightgbm", {"family": "random_forest", "params": {"n_estimators": 50}}],
    }))
    spec = load_spec(path)
    assert [m.family for m in spec.models] == ["lightgbm", "random_forest"]
    assert spec.models[1].params == {"n_estimators": 50}
    assert [m.family for m in build_spec(models="linear, knn").models] == ["linear", "knn"]


def test_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data: {source: a.csv, target: y}\ntraining: {time_limit: 10}\n")
    spec = build_spec(str(path), time_limit=30, name="churn", target=None)
    assert spec.training.time_limit == 30
    assert spec.data.target == "y"  # None overrides are ignored
    assert spec.output.name == "churn"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"split": {"train": 1.5}}, "split.train: Input should be less than 1 (got 1.5)"),
        ({"split": {"train": 0.5}}, "must sum to 1"),
        ({"data": {"task": "clustering"}}, "data.task: Input should be 'auto', 'classification' or 'regression' (got 'clustering')"),
        ({"split": {"trian": 0.7}}, "unknown field 'split.trian'; did you mean 'train'?"),
        ({"modles": "auto"}, "unknown field 'modles'; did you mean 'models'?"),
        ({"models": ["lightgbn"]}, "unknown model family 'lightgbn'; did you mean 'lightgbm'?"),
        ({"training": {"metric": "acuracy"}}, "unknown metric 'acuracy'; did you mean 'accuracy'?"),
        ({"training": {"time_limit": -5}}, "training.time_limit: Input should be greater than 0 (got -5)"),
        ({"output": {"name": "bad/name"}}, "output.name"),
        ({"split": {"strategy": "group"}}, "strategy 'group' needs group_column"),
        ({"neural": {"device": "gpu"}}, "neural.device: expected auto | cpu | cuda | cuda:N | mps (got 'gpu')"),
        ({"neural": {"optimizer": "adagrad"}}, "neural.optimizer: Input should be 'sgd', 'adam', 'adamw' or 'rmsprop' (got 'adagrad')"),
        ({"neural": {"learning_rate": -0.1}}, "neural.learning_rate: Input should be greater than 0 (got -0.1)"),
        ({"neural": {"early_stopping": {"patience": 0}}}, "neural.early_stopping.patience"),
    ],
)
def test_invalid_specs_give_one_line_naming_the_field(raw, expected):
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_keyword_is_reported_with_a_suggestion():
    with pytest.raises(SpecError, match="unknown option 'time_limt'; did you mean 'time_limit'"):
        build_spec(time_limt=3)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="spec file .* not found; create one with `forgeml init"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  target: [unclosed\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        load_spec(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping of sections, got list"):
        load_spec(listy)
