"""Run configuration files: the extract scripts' own options, written down once.

A config is TOML. Keys at the top are shared defaults; a table per modality (`[text]`,
`[image]`, `[audio]`, `[video]`) holds that extractor's options. Every key is a long option
of the extract scripts without its dashes (`batch-size = 8`, `plots = "data/plots.tsv"`),
so the config and the command line are one contract (m3l.cli.build_parser); `models` may
also be a list. Relative paths are resolved against the config file's folder.
Precedence: the command line, then `--set modality.option=value` (relative paths against the
working directory), then the modality's table, then the shared defaults, then the scripts'
own defaults.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3l.errors import UserError

# Options of the command line only: they choose a config, they are not part of one.
NOT_IN_CONFIG = ("help", "config", "set", "print-config")


def read(path: Path | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The config at `path` (none: empty) with every `--set` override applied."""
    config: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                config = tomllib.load(handle)
        except OSError as error:
            raise UserError(f"cannot read config {path}: {error.strerror or error}") from None
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"config {path} is not valid TOML: {error}") from None
    for override in overrides:
        _apply_override(config, override)
    return config


def _apply_override(config: dict[str, Any], override: str) -> None:
    """`--set text.batch-size=16` (or `--set device=cpu`, a shared default); the value is read as a
    TOML value, and as a plain string where it is not one (`--set text.device=cpu`)."""
    key, equals, text = override.partition("=")
    if not equals or not key.strip():
        raise UserError(f"--set {override}: expected modality.option=value or option=value")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    *section, option = key.strip().split(".")
    table = config
    for name in section:
        table = table.setdefault(name, {})
        if not isinstance(table, dict):
            raise UserError(f"--set {override}: {name} is an option, not a section")
    table[option] = Given(value)


@dataclass(frozen=True)
class Given:
    """A value from `--set`: a relative path in it is relative to the working directory, not the config's."""

    value: Any


def modality_defaults(config: Mapping[str, Any], folder: Path, parsers: Mapping[str, argparse.ArgumentParser],
                      modality: str) -> dict[str, Any]:
    """Argument defaults (dest → value) of `modality` from the config, every key checked against every
    modality's options (`parsers`): an unknown key or section, or a wrong type, is a UserError naming it."""
    shared = {key: value for key, value in config.items() if not isinstance(value, dict)}
    for name, value in config.items():
        if isinstance(value, dict) and name not in parsers:
            raise UserError(f"config: unknown section [{name}]{_suggestion(name, parsers)}; "
                            f"sections are {', '.join(f'[{m}]' for m in parsers)}")
    known = {key for parser in parsers.values() for key in options(parser)}
    for key in shared:
        if key not in known:
            raise UserError(f"config: unknown option {key}{_suggestion(key, known)}")
    for name, parser in parsers.items():
        for key in config.get(name, {}):
            if key not in options(parser):
                raise UserError(f"config: unknown option {name}.{key}{_suggestion(key, options(parser))}")
    every = {name: _defaults(shared, config.get(name, {}), options(parser), name, folder)
             for name, parser in parsers.items()}  # every table checked, whichever modality runs
    return every[modality]


def _defaults(shared: Mapping[str, Any], table: Mapping[str, Any], own: Mapping[str, argparse.Action],
              modality: str, folder: Path) -> dict[str, Any]:
    merged = {key: (key, value) for key, value in shared.items() if key in own}
    merged.update({key: (f"{modality}.{key}", value) for key, value in table.items()})
    return {own[key].dest: _value(own[key], name, value, folder) for key, (name, value) in merged.items()}


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key → the parser's action: each long option without its leading dashes."""
    found = {}
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag[2:] not in NOT_IN_CONFIG:
                found[flag[2:]] = action
    return found


def _suggestion(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key.replace("_", "-"), list(candidates), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _value(action: argparse.Action, key: str, value: Any, folder: Path) -> Any:
    """A config value as the command line would have parsed it, or a UserError naming `key`."""
    if isinstance(value, Given):
        value, folder = value.value, Path()
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UserError(f"config: {key} must be true or false, not {_shown(value)}")
        return value
    if isinstance(value, list) and action.dest == "models" and all(isinstance(name, str) for name in value):
        value = ",".join(value)
    if action.type in (None, Path):
        if not isinstance(value, str):
            raise UserError(f"config: {key} must be a string, not {_shown(value)}")
        converted = folder / value if action.type is Path else value
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"config: {key} must be a number, not {_shown(value)}")
    else:
        try:
            converted = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise UserError(f"config: {key} = {_shown(value)}: {error}") from None
    if action.choices is not None and converted not in action.choices:
        raise UserError(f"config: {key} must be one of {', '.join(map(str, action.choices))}, not {_shown(value)}")
    return converted


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {json.dumps(value, default=str)}"


def resolved(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Every option of a parsed command line as config keys (paths absolute, unset ones left out)."""
    found = {}
    for key, action in options(parser).items():
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        found[key] = os.path.abspath(value) if isinstance(value, Path) else value
    return found


def dumps(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text of tables of plain values (strings, numbers, booleans)."""
    lines = []
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{key} = {_toml(value)}" for key, value in values.items()), ""]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string
