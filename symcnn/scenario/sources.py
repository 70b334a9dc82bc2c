"""Read a scenario from a file, a built-in name or a dict: plain data in, a checked Scenario out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ScenarioError
from .model import NAME_PATTERN, Scenario, validate


class _UniqueKeyLoader:
    """Built lazily: a yaml SafeLoader that rejects duplicate keys and reads 1e-3 as a float; on LibYAML's C
    parser where PyYAML has it (lenet-like's 68,000 numbers: 0.6 s instead of 4.5 s)."""

    _cls = None

    @classmethod
    def get(cls):
        if cls._cls is None:
            import yaml

            class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                pass

            def construct_mapping(loader, node, deep=False):
                seen = {}
                for key_node, _ in node.value:
                    key = loader.construct_object(key_node, deep=deep)
                    try:
                        hash(key)
                    except TypeError:  # e.g. `? [a, b]`: SafeLoader reports it as an unhashable key
                        continue
                    if key in seen:
                        line = key_node.start_mark.line + 1
                        raise ScenarioError(f"line {line}", f"duplicate key '{key}'")
                    seen[key] = True
                return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

            Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
            float_pattern = re.compile(
                r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$"
                r"|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"
            )
            Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_pattern, list("-+0123456789."))
            cls._cls = Loader
        return cls._cls


def builtin_dir():
    return resources.files("symcnn") / "scenario" / "builtins"


def builtin_names() -> list[str]:
    return sorted(p.name.rsplit(".", 1)[0] for p in builtin_dir().iterdir() if p.name.endswith(".yaml"))


def read_source(source: str | Path) -> tuple[Any, str]:
    """Parse a scenario file or a built-in name into plain data; return (data, label for errors)."""
    text_source = str(source)
    path = Path(text_source)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        if text_source in builtin_names():
            resource = builtin_dir() / f"{text_source}.yaml"
            return parse_text(resource.read_text(encoding="utf-8"), "yaml", text_source), text_source
        if path.exists():
            raise ScenarioError(text_source, "expected a .yaml, .yml or .json file")
        known = ", ".join(builtin_names())
        raise ScenarioError(text_source, f"no such file or built-in scenario (built-ins: {known})")
    return read_data(path), text_source


def read_data(path: str | Path, kind: str | None = None) -> Any:
    """Plain data from a YAML or JSON file (JSON when it ends in .json, unless ``kind`` says); errors name the file."""
    label = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(label, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(label, f"cannot read file: {reason}") from None
    kind = kind or ("json" if label.lower().endswith(".json") else "yaml")
    return parse_text(text, kind, label)


def parse_text(text: str, kind: str, label: str) -> Any:
    if kind == "json":
        # NaN/Infinity parse to floats here; validation rejects them naming the key path.
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as exc:
            raise ScenarioError(label, f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise ScenarioError(label, str(exc)) from None
        except RecursionError:
            raise ScenarioError(label, "invalid JSON: nested too deeply") from None
    import yaml

    try:
        return yaml.load(text, Loader=_UniqueKeyLoader.get())  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ScenarioError(label, "invalid YAML: nested too deeply") from None
    except ScenarioError as exc:
        raise ScenarioError(label, f"{exc.where}: {exc.what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(label, f"{where}invalid YAML: {problem}") from None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, rejecting a repeated key as the YAML loader does."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}'")
        out[key] = value
    return out


def load(source: str | Path | Mapping | Scenario) -> Scenario:
    """A Scenario from a file path, a built-in name, a dict shaped like the file, or a Scenario."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return validate(source)
    data, label = read_source(source)
    stem = Path(label).stem.lower()
    return validate(data, label, stem if NAME_PATTERN.match(stem) else "scenario")
