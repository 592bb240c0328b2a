"""Reading a YAML config file safely: bounded in size, nesting and alias expansion, one line per refusal.

Far above any real config (a few KB, four levels deep) and far below what
would stall start-up, so a hostile or corrupt file is refused in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from exporter.config.problems import ConfigError, kind_of

MAX_CONFIG_BYTES: Final = 1024 * 1024
MAX_NESTING: Final = 32
MAX_VALUES: Final = 50_000
"""Scalars and collections after alias expansion (a "billion laughs" file expands to ~10^9)."""

_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built


class _UniqueKeyLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """A safe YAML loader that rejects a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML config file into a mapping (empty file → ``{}``); raise ``ConfigError`` if unusable."""
    name = str(path)
    text = _read_text(path, name)
    if "\x00" in text:
        at = text.index("\x00")
        line, column = text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
        raise ConfigError(
            [(name, f"line {line}, column {column}: a NUL byte is not allowed in a config file")]
        )
    try:
        _check_shape(text, name)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([(name, f"{where}invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([(name, f"invalid YAML: {exc}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([(name, f"the top level must be a mapping of settings, not a {kind_of(data)}")])
    return data


def _read_text(path: Path, name: str) -> str:
    """The file's text, refusing a directory, a file too large to be a config, or bytes that are not UTF-8."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([(name, "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([(name, "is a directory, not a config file")]) from None
    except OSError as exc:
        raise ConfigError(
            [(name, f"cannot read config file: {exc.strerror or type(exc).__name__}")]
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([(name, f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config file")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([(name, f"cannot read config file: not UTF-8 text (byte {exc.start})")]) from None


def _check_shape(text: str, name: str) -> None:
    """Refuse YAML nested too deep or expanding to too many values, from its events alone.

    PyYAML builds documents recursively and expands aliases into shared
    objects that validation then walks once per reference, so both checks run
    on the event stream, before anything is built: an alias counts as the size
    of what it names, which is how "billion laughs" is caught at its first level.
    """
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[0, None]]  # [values so far, anchor] per open collection; [0] is the root
    for event in yaml.parse(text, Loader=_SafeBase):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > MAX_NESTING:
                raise ConfigError([(name, f"{_at(event)}nested deeper than {MAX_NESTING} levels")])
            stack.append([1, event.anchor])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
        else:
            continue
        stack[-1][0] += size
        if stack[-1][0] > MAX_VALUES:
            raise ConfigError(
                [(name, f"{_at(event)}holds more than {MAX_VALUES} values (each alias counted in full)")]
            )


def _at(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
