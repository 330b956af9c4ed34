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

# A config is a few dozen keys. These bounds are far above any real one and far below what hurts:
# a 520-byte YAML of nested anchors/aliases expands to billions of values, and printing one of them in
# an error message took 114 s and 6 GB before failing.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000  # scalars + containers, each alias counted every time it is used
MAX_CONFIG_DEPTH = 50
SEED_RANGE = (0, 2**32 - 1)  # what NumPy accepts; torch and random take it too


def brief(value: Any, limit: int = 60) -> str:
    """A repr of `value` of at most about `limit` characters, computed in bounded time.

    Why: error messages echo the value that is wrong, and a hostile value (a YAML alias bomb, a
    checkpoint of shared nested lists, a 5,000-digit number) has a repr of gigabytes or none at all.
    Containers show their length (and their items only when few and plain), long strings their start.
    """
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        bits = value.bit_length()
        return repr(value) if bits <= 200 else f"an integer of about {int(bits * 0.30103) + 1} digits"
    if isinstance(value, (str, bytes)):
        if len(value) <= limit:
            return repr(value)
        return f"{repr(value[:limit])[:-1]}...{repr(value[:1])[-1]} ({len(value):,} characters)"
    if isinstance(value, (list, tuple)):
        if len(value) <= 8 and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
            inner = ", ".join(brief(v, max(8, limit // 8)) for v in value)
            if len(inner) <= limit:
                return f"[{inner}]" if isinstance(value, list) else f"({inner})"
        return f"a {type(value).__name__} of {len(value):,} items"
    if isinstance(value, dict):
        return f"a mapping of {len(value):,} keys"
    return f"a {type(value).__name__}"


def check_size(data: Any, where: str | Path | None) -> None:
    """Refuse a loaded config holding more than MAX_CONFIG_VALUES values (aliases expanded) or nested
    deeper than MAX_CONFIG_DEPTH. Iterative, and it stops at the first value over the budget, so a
    billion-laughs document costs microseconds here and never reaches a repr or a type conversion."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(f"config holds more than {MAX_CONFIG_VALUES:,} values (YAML anchors/aliases that "
                              f"expand to a huge document?); a config is a few dozen keys", where)
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"config nested more than {MAX_CONFIG_DEPTH} levels deep; a config is a flat "
                              f"mapping of key: value", where)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping; errors name the file (and line for YAML syntax errors).

    Bounded: at most MAX_CONFIG_BYTES are read, and the parsed document must pass check_size.
    """
    path = Path(path)
    try:
        if "\x00" in str(path):
            raise ValueError("NUL")
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file larger than {MAX_CONFIG_BYTES // 1024} KB; a config is a few dozen "
                              f"keys (is this the right file?)", path)
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e.__class__.__name__}", path) from None
    except ValueError:
        raise ConfigError("config path contains a NUL character (\\x00)", brief(str(path))) from None
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror or e}", path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON: {e.msg}", path, e.lineno) from None
        except RecursionError:
            raise ConfigError(f"invalid config: nested too deeply (a config is a flat mapping of key: value)",
                              path) from None
        except ValueError as e:  # a number of more than 4,300 digits
            raise ConfigError(f"invalid JSON: {first_line(e, 120)}", path) from None
    else:
        data = _load_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of key: value", path)
    check_size(data, path)
    return data


_BRACKET = re.compile(r"[\[\]{}]")


def _bracket_depth(text: str) -> int:
    """The deepest nesting of [ ] / { } in `text` (quotes not considered: an over-estimate at worst).
    Why: PyYAML's scanner slows down quadratically with flow nesting (2,000 levels: a second on a quiet
    machine, a minute on a busy one) before it fails; this look is linear in the number of brackets."""
    depth = deepest = 0
    for m in _BRACKET.finditer(text):
        if m.group(0) in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def _load_yaml(text: str, where: str | Path | None) -> Any:
    """yaml.safe_load, every failure as a ConfigError: syntax errors with their line, a document nested
    deeper than Python's recursion limit, a number too long to convert (over 4,300 digits)."""
    if text.count("[") + text.count("{") > MAX_CONFIG_DEPTH and _bracket_depth(text) > MAX_CONFIG_DEPTH:
        raise ConfigError(f"config nested more than {MAX_CONFIG_DEPTH} levels deep; a config is a flat "
                          f"mapping of key: value", where)
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or first_line(e)
        raise ConfigError(f"invalid YAML: {brief(problem, 160)[1:-1] if isinstance(problem, str) else problem}",
                          where, line) from None
    except RecursionError:
        raise ConfigError("invalid config: nested too deeply (a config is a flat mapping of key: value)",
                          where) from None
    except (ValueError, OverflowError) as e:
        raise ConfigError(f"invalid YAML: {first_line(e, 120)}", where) from None


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML, so `lr=3e-4`, `compile=false`, `dims=[1,2]` work."""
    if "=" not in item:
        raise ConfigError(f"override {brief(item)} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override {brief(item)} has no key before '='")
    if raw.count("[") + raw.count("{") > MAX_CONFIG_DEPTH and _bracket_depth(raw) > MAX_CONFIG_DEPTH:
        raise ConfigError(f"override {brief(key)}=...: nested more than {MAX_CONFIG_DEPTH} levels deep",
                          COMMAND_LINE)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"override {brief(key)}=...: nested too deeply", COMMAND_LINE) from None
    except (ValueError, OverflowError) as e:
        raise ConfigError(f"override {brief(key)}=...: {first_line(e, 120)}", COMMAND_LINE) from None
    check_size(value, f"{COMMAND_LINE} ({brief(key, 40)[1:-1]}=...)")
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
            raise ConfigError(f"{key}: expected {' or '.join(forms)}, got {brief(value)}", source)
        raise errors[0] if errors else ConfigError(f"{key}: invalid value {brief(value)}", source)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))}, got {brief(value)}", source)
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {brief(value)}", source)
        inner = args[0] if args else Any
        return [_coerce(v, inner, key, source) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {brief(value)}", source)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true or false, got {brief(value)}", source)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {brief(value)}", source)
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
        raise ConfigError(f"{key}: expected an integer, got {brief(value)}", source)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {brief(value)}", source)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {brief(value)}", source)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {brief(value)}", source)
        text = "" if value is None else str(value)
        if "\x00" in text:  # no path, name or prompt holds one; open()/mkdir() would fail with a traceback
            raise ConfigError(f"{key}: contains a NUL character (\\x00), not allowed in a text or path setting",
                              source)
        return text
    return value


def _unknown_key(key: str, known: Sequence[str], source: str | None, aliases: dict[str, str]) -> ConfigError:
    """Suggest the name people mean: the config class's KEY_ALIASES (names from other trainers), else the
    closest spelling."""
    close = [aliases[key]] if key in aliases else difflib.get_close_matches(key[:100], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {brief(key)}{hint}", source)


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
        bounds = fields[key].metadata.get("range")
        if bounds is None and (key == "seed" or key.endswith("_seed")):  # 10**30 would pass until torch.manual_seed
            bounds = SEED_RANGE
        check_range(key, value, bounds, origin[key] or None)
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(first_line(e), _blame(first_line(e), origin, path, given)) from None
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
        raise ConfigError(f"{key}: {brief(value)} is out of range (valid: {_range_text(bounds)})", source)


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
