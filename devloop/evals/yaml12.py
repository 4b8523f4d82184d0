"""YAML 1.2 (core schema) scalars on top of PyYAML, as promptfoo's js-yaml reads them.

PyYAML implements YAML 1.1, where ``yes``/``no``/``on``/``off`` (any case) are booleans and
``1:20`` is a base-60 integer. promptfoo (js-yaml) keeps those as strings, so an eval set
saying ``vars: {cc: NO}`` sends "NO", not "False". Only ``true``/``false`` (as written in
the 1.2 core schema) are booleans here. Dates stay text (they are prompt text, and hashes of
eval sets are JSON).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from devloop.config import load_yaml


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's bool, int and float resolution."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                           "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _bool12(loader: Yaml12Loader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _int12(loader: Yaml12Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _bool12)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int12)


def loads(text: str) -> Any:
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml12(path: Path) -> Any:
    """Read a YAML file with 1.2 scalars; ConfigError(file, line, reason) when it is bad."""
    return load_yaml(path, Yaml12Loader)
