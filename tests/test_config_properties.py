"""Property tests: every config field survives JSON, YAML and CLI round trips with an unchanged hash,
and a value of the wrong type for any field is refused with an error naming that field."""

import json
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rplib.cli import _run_config
from rplib.config import RunConfig, describe_fields
from rplib.fields import dump_yaml, load_yaml

FIELDS = {r["field"]: r for r in describe_fields()}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def base_changes(field: str) -> dict:
    """A sparse base config, so that sparse-only fields are valid; an MLP for its hidden widths."""
    changes = {"sparsity.method": "random", "sparsity.density": 0.1}
    if field == "model.hidden":
        changes["model.name"] = "mlp"
    return changes

finite = st.floats(min_value=1e-6, max_value=0.999, allow_nan=False) | st.integers(1, 9).map(lambda i: i / 10)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


def valid_value(field: str) -> st.SearchStrategy:
    row = FIELDS[field]
    kind, choices = row["type"], row["choices"]
    if field == "optim.milestones":
        return st.lists(finite, max_size=3, unique=True).map(sorted)
    if field == "data.fingerprint":  # filled in from the data (tests/test_data.py, tests/test_fashion_mnist.py)
        return st.just("")
    if field == "sparsity.scheme_options":
        return st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.integers(0, 9) | finite | text,
                               max_size=2)
    if choices:
        if kind.startswith("list of"):
            return st.lists(st.sampled_from(choices), unique=True, max_size=2)
        return st.sampled_from(choices)
    if kind == "bool":
        return st.booleans()
    if kind.startswith("int"):
        return st.integers(0, 200)
    if kind.startswith("float"):
        return finite
    if kind.startswith("list of int"):
        return st.lists(st.integers(1, 64), min_size=1, max_size=3)
    if kind.startswith("list of float"):
        return st.lists(finite, max_size=3)
    return text


def invalid_value(field: str) -> st.SearchStrategy:
    """A value of the wrong type for the field (never valid whatever the other fields hold)."""
    kind, choices = FIELDS[field]["type"], FIELDS[field]["choices"]
    if kind == "bool":
        return st.sampled_from(["maybe", "yes please", 1, 0.5, [True]])
    if kind.startswith("int"):
        return st.sampled_from(["abc", "2", 2.5, True, float("inf"), [1]])
    if kind.startswith("float"):
        return st.sampled_from(["fast", True, float("inf"), float("nan"), {"a": 1}])
    if kind.startswith("list of"):
        return st.sampled_from([5, "x" if not choices else 5.5, {"a": 1}, True])
    if choices:
        return st.sampled_from([*(c + "_x" for c in choices[:3]), 3, ["a"]])
    return st.sampled_from([5, 2.5, True, ["a"]])


def build(field: str, value) -> RunConfig:
    try:
        return RunConfig().with_(base_changes(field) | {field: value})
    except ValueError:
        assume(False)  # valid type, but out of range or against another field (e.g. warmup >= epochs)


@pytest.mark.parametrize("field", sorted(FIELDS))
@SETTINGS
@given(data=st.data())
def test_valid_values_round_trip_with_the_same_hash(field, data):
    cfg = build(field, data.draw(valid_value(field)))
    as_json = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    as_yaml = RunConfig.from_dict(load_yaml(dump_yaml(cfg.to_dict())))
    value = cfg.to_dict()
    for key in field.split("."):
        value = value[key]
    sets = [f"{k}={v}" for k, v in base_changes(field).items()] + [f"{field}={dump_yaml(value, flow=True)}"]
    as_cli = _run_config(None, sets)
    assert as_json == as_yaml == as_cli == cfg
    assert as_json.hash == as_yaml.hash == as_cli.hash == cfg.hash


@pytest.mark.parametrize("field", sorted(FIELDS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_wrong_types_name_the_field(field, data):
    bad = data.draw(invalid_value(field))
    with pytest.raises(ValueError) as err:
        RunConfig().with_(base_changes(field) | {field: bad})
    assert field in str(err.value)
    if not (isinstance(bad, float) and math.isnan(bad)):
        with pytest.raises(ValueError) as err:
            _run_config(None, [f"{field}={dump_yaml(bad, flow=True)}"])
        assert field in str(err.value)


@pytest.mark.parametrize("section", ["data", "model", "sparsity", "dst", "optim", "eval"])
def test_a_scalar_for_a_section_names_it(section):
    with pytest.raises(ValueError, match=f"^{section} must be a section"):
        RunConfig.from_dict({section: 5})
