"""Strict field types for the frozen config dataclasses, and the YAML reader the CLI and profiles use.

Every config section calls :func:`check_fields` first in ``__post_init__``: each field is checked
against its type hint and normalised, so that equal values hash equally (``lr=1`` and ``lr=1.0``;
a list and a tuple) and a wrong type is refused with the field's name and the bad value:

- ``bool``: ``True``/``False`` only (not ``1``, not ``"maybe"``);
- ``int``: integers, and floats with an integral value (``2.0`` -> ``2``); not bools, not strings;
- ``float``: finite real numbers (ints become floats); not bools, not strings, not inf/nan;
- ``str``: strings; a nested section: an instance of its dataclass (``from_dict`` builds it from a
  mapping); ``tuple[T, ...]``: a list or tuple of ``T``; ``X | None``: ``None`` or an ``X``.

YAML 1.1 (PyYAML's default) reads ``1e-3`` as a string; :func:`load_yaml` resolves numbers the
YAML 1.2 way so that scientific notation is a float wherever a config is read.

:func:`load_yaml` is bounded: a text of at most :data:`YAML_MAX_CHARS` characters whose document,
with every alias expanded, has at most :data:`YAML_MAX_NODES` nodes (nested aliases, the "billion
laughs", would otherwise expand exponentially in whatever reads the result), and no mapping with a
key given twice (YAML and JSON readers would silently keep only one of them).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import types
import typing
from typing import Any

import yaml

__all__ = ["check_fields", "type_hints", "describe_type", "load_yaml", "dump_yaml", "YamlLoader", "YamlDumper",
           "YAML_MAX_CHARS", "YAML_MAX_NODES"]

YAML_MAX_CHARS = 1_000_000
YAML_MAX_NODES = 100_000


def _kind(value: Any) -> str:
    return type(value).__name__


def describe_type(tp: Any) -> str:
    """A short human name of a field type: ``int``, ``float``, ``list of float``, ``int or null``..."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(describe_type(a) for a in args) + " or null"
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if typing.get_origin(inner) is tuple:
            return "mapping of options"
        return f"list of {describe_type(inner)}"
    if dataclasses.is_dataclass(tp):
        return f"section ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """``value`` normalised to ``tp``; ``ValueError`` naming ``name`` and the value otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(inner, value, name)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if typing.get_origin(inner) is tuple:  # option pairs, e.g. scheme_options
            return _options(value, name)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of {describe_type(inner)}, got {value!r} ({_kind(value)})")
        return tuple(_coerce(inner, v, f"{name}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise ValueError(f"{name} must be a section (a mapping of {tp.__name__} fields), "
                             f"got {value!r} ({_kind(value)})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r} ({_kind(value)})")
        return value
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
                and float(value).is_integer():
            return int(value)
        raise ValueError(f"{name} must be an integer, got {value!r} ({_kind(value)})")
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            return float(value)
        raise ValueError(f"{name} must be a number, got {value!r} ({_kind(value)})")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r} ({_kind(value)})")
        return value
    return value  # typing.Any


def _plain(value: Any, name: str) -> Any:
    """An option value as plain JSON data: finite numbers, strings, bools, null, lists (as tuples)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, f"{name}[{i}]") for i, v in enumerate(value))
    raise ValueError(f"{name} must be a number, string, bool or list, got {value!r} ({_kind(value)})")


def _options(value: Any, name: str) -> tuple[tuple[str, Any], ...]:
    """Options given as a mapping or as (key, value) pairs -> sorted pairs of plain values."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        pairs = [tuple(p) for p in value]
    else:
        raise ValueError(f"{name} must be a mapping of option names to values, got {value!r}")
    for k, _ in pairs:
        if not isinstance(k, str):
            raise ValueError(f"{name} keys must be strings, got {k!r}")
    return tuple(sorted((k, _plain(v, f"{name}.{k}")) for k, v in pairs))


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class (it compiles every annotation string, and a grid
    of thousands of configs checks each section of each of them)."""
    return typing.get_type_hints(cls)


def check_fields(obj: Any) -> None:
    """Check and normalise every field of the (frozen) dataclass ``obj`` against its type hint."""
    hints = type_hints(type(obj))
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, _coerce(hints[f.name], getattr(obj, f.name), f.name))


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats (``1e-3``, ``1E5``, ``.5`` are numbers, not strings), at most
    :data:`YAML_MAX_NODES` nodes once aliases are expanded, and no duplicate keys."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (a mapping may give each key once)", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse a document of more than :data:`YAML_MAX_NODES` nodes once every alias is expanded (counted on
    the node graph, where an alias is a shared node, without expanding anything)."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if not children_done and id(node) in open_:
            raise yaml.constructor.ConstructorError(None, None, "a recursive alias (a node that contains itself)",
                                                    node.start_mark)
        children = [] if isinstance(node, yaml.ScalarNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            size[id(node)] = min(1 + sum(size.get(id(c), 0) for c in children), YAML_MAX_NODES + 1)
            continue
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    if size[id(root)] > YAML_MAX_NODES:
        raise yaml.constructor.ConstructorError(
            None, None, f"the document expands (aliases included) to more than {YAML_MAX_NODES} nodes, the limit",
            root.start_mark)


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                     |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                     |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                     |[-+]?\.(?:inf|Inf|INF)
                     |\.(?:nan|NaN|NAN))$""", re.X)
YamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    YamlLoader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in YamlLoader.yaml_implicit_resolvers.get(_first, []) if tag != "tag:yaml.org,2002:float"]
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class YamlDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes every string :class:`YamlLoader` would read as a number."""


YamlDumper.yaml_implicit_resolvers = YamlLoader.yaml_implicit_resolvers


def dump_yaml(obj: Any, flow: bool = False) -> str:
    """YAML text that :func:`load_yaml` reads back as ``obj`` (tuples written as lists)."""
    plain = _lists(obj)
    text = yaml.dump(plain, Dumper=YamlDumper, sort_keys=False, default_flow_style=flow, width=10**6).rstrip()
    return text.removesuffix("\n...")  # the end-of-document marker PyYAML writes after a lone scalar


def _lists(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    return obj


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with :class:`YamlLoader`; a syntax error, a duplicate key or a document over the limits
    (:data:`YAML_MAX_CHARS`, :data:`YAML_MAX_NODES`) becomes one line naming ``source``."""
    if len(text) > YAML_MAX_CHARS:
        raise ValueError(f"{source}: {len(text)} characters, more than the {YAML_MAX_CHARS} a config may have")
    try:
        return yaml.load(text, Loader=YamlLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{source}: not valid YAML{at}: {problem}") from None
