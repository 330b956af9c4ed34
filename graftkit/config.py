"""Config loading: a YAML (or JSON) file, then `key=value` overrides from the command line.

Why dataclasses: each script declares its config once, with defaults and a help string per field.
The loader checks every key against that declaration (a typo is an error naming the file and the
closest valid key), converts values to the declared type, and the same declaration feeds `--help`.

Usage in a script:

    @dataclass
    class TrainConfig:
        n_layer: int = field(default=4, metadata={"help": "transformer blocks (2-4)"})
        ...

    cfg = load_config(TrainConfig, args.config, args.overrides)
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError, first_line

T = TypeVar("T")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping; errors name the file (and line for YAML syntax errors)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e.__class__.__name__}", path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON: {e.msg}", path, e.lineno) from None
    else:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(e, "problem", None) or first_line(e)
            raise ConfigError(f"invalid YAML: {problem}", path, line) from None
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of key: value", path)
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML, so `lr=3e-4`, `compile=false`, `dims=[1,2]` work."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override {item!r} has no key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _coerce(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """Convert `value` to the annotated type `tp`, or raise ConfigError naming key and source."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("null", "none", "~") and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError as e:
                errors.append(e)
        if len(errors) > 1:  # e.g. bool | Literal["auto"]: name every accepted form, not only the first
            forms = [e.message.split(": ", 1)[-1].split(", got ")[0] for e in errors]
            forms = [f.removeprefix("expected ").removeprefix("must be one of ") for f in forms]
            raise ConfigError(f"{key}: expected {' or '.join(forms)}, got {value!r}", source)
        raise errors[0] if errors else ConfigError(f"{key}: invalid value {value!r}", source)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))}, got {value!r}", source)
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}", source)
        inner = args[0] if args else Any
        return [_coerce(v, inner, key, source) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}", source)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true or false, got {value!r}", source)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}", source)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}", source)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}", source)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}", source)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}", source)
        return "" if value is None else str(value)
    return value


def _unknown_key(key: str, known: Sequence[str], source: str | None, aliases: dict[str, str]) -> ConfigError:
    """Suggest the name people mean: the config class's KEY_ALIASES (names from other trainers), else the
    closest spelling."""
    close = [aliases[key]] if key in aliases else difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {key!r}{hint}", source)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build `cls` (a dataclass) from defaults, then the file at `path`, then `key=value` overrides.

    Every value is converted to its declared type and checked against its declared range
    (`key(..., range=(lo, hi))`); errors name the key and where it was set: the file, or the
    command line for an override (never the file for a value the file does not hold).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    layers: list[tuple[dict[str, Any], str | None]] = []
    if path is not None:
        layers.append((read_config_file(path), str(path)))
    given: dict[str, str] = {}  # key -> the override as typed, to name it in errors
    if overrides:
        parsed = [parse_override(o) for o in overrides]
        given = {k: o.strip() for (k, _), o in zip(parsed, overrides)}
        layers.append((dict(parsed), COMMAND_LINE))
    for data, source in layers:
        for key, value in data.items():
            if key not in fields:
                raise _unknown_key(str(key), list(fields), source, getattr(cls, "KEY_ALIASES", {}))
            values[key] = _coerce(value, hints[key], key, source)
            origin[key] = source or ""
    for key, value in values.items():  # after all layers: an override may fix a value of the file
        check_range(key, value, fields[key].metadata.get("range"), origin[key] or None)
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e), _blame(str(e), origin, path, given)) from None
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as e:
            if e.path is None:
                where = _blame(e.message, origin, path, given)
                if where is not None:
                    raise ConfigError(e.message, where, e.line) from None
            raise
    return cfg


COMMAND_LINE = "command line"


def _blame(message: str, origin: dict[str, str], path: str | Path | None, given: dict[str, str]) -> str | None:
    """Where the keys named in an error message were set: the file, the command line, or both.

    Why: `n_head=3` on the command line against an n_embd of 128 in the YAML used to be reported as
    an error in the YAML file, sending the user to look for a line that is not there.
    """
    named = [k for k in origin if re.search(rf"\b{re.escape(k)}\b", message)]
    sources = list(dict.fromkeys(origin[k] for k in named if origin[k]))
    if not sources:
        return str(path) if path is not None and not named else None
    overrides = " ".join(given[k] for k in named if origin[k] == COMMAND_LINE and k in given)
    return " and ".join(f"{COMMAND_LINE} ({overrides})" if s == COMMAND_LINE and overrides else s for s in sources)


def check_range(key: str, value: Any, bounds: tuple[Any, Any] | None, source: str | None = None) -> None:
    """Raise ConfigError if `value` is outside the inclusive `bounds` (lo, hi); None = open side.

    Why here and not in each validate(): one rule, one message format ("valid: lo to hi"), and a
    NaN fails it too (every comparison with NaN is false).
    """
    if bounds is None or value is None or isinstance(value, (bool, str, list, dict)):
        return
    lo, hi = bounds
    if (lo is not None and not value >= lo) or (hi is not None and not value <= hi) or value != value:
        raise ConfigError(f"{key}: {value!r} is out of range (valid: {_range_text(bounds)})", source)


def _range_text(bounds: tuple[Any, Any]) -> str:
    lo, hi = bounds
    if lo is None:
        return f"at most {hi}"
    if hi is None:
        return f"at least {lo}"
    return f"{lo} to {hi}"


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def key(default: Any, help_text: str, range: tuple[Any, Any] | None = None) -> Any:  # noqa: A002
    """A config field with its `--help` text and, optionally, its valid range (lo, hi), inclusive;
    None leaves a side open. load_config rejects values outside it, naming the range.
    List defaults get a fresh copy per instance."""
    meta = {"help": help_text}
    if range is not None:
        meta["range"] = range
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def config_help(cls: type) -> str:
    """A `key (default): help` listing of every config field, for argparse epilogs."""
    lines = ["config keys (set in the YAML file or as key=value on the command line):"]
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        if f.metadata.get("range") is not None:
            help_text += f" [valid: {_range_text(f.metadata['range'])}]"
        lines.append(f"  {f.name} = {default!r}\n      {help_text}")
    return "\n".join(lines)


def add_config_args(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    """Add `--config FILE` and positional `key=value` overrides to a script's argument parser."""
    parser.add_argument("--config", default=default_config, metavar="FILE",
                        help=f"YAML or JSON config file (default: {default_config})")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override any config key, e.g. learning_rate=3e-4 epochs=5")
    # `script.py --config c.yaml --chat lr=1e-4` must work: plain parse_args stops filling a "*"
    # positional once an option follows it, so overrides after a flag would be rejected.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]
