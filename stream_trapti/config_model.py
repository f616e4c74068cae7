"""Validation of our own input files (experiment, sweep) with pydantic, and their errors as one line.

Every model forbids unknown keys and is immutable once validated. A :class:`pydantic.ValidationError` becomes one
:class:`~stream_trapti.errors.ConfigError` line, ``"<file>: key '<key.path>': <what was expected>, got <value>"``,
so a user sees which file and key to change. This module imports neither Stream nor ZigZag: Stage II validates its
sweep without loading them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, AllowInfNan, BaseModel, ConfigDict, Strict, ValidationError
from pydantic_core import ErrorDetails

from stream_trapti.errors import ConfigError, InputFileError, check_file, one_line
from stream_trapti.workloads.config import PRESETS

FORBID_UNKNOWN_KEYS = ConfigDict(extra="forbid")
"""The configuration of our pydantic dataclasses, which take ``frozen=True`` from their decorator."""


class ConfigModel(BaseModel):
    """Base of our configuration models: an unknown key is an error, and a validated configuration never changes."""

    model_config = ConfigDict(**FORBID_UNKNOWN_KEYS, frozen=True)


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def _unique(values: tuple[T, ...]) -> tuple[T, ...]:
    if len(set(values)) != len(values):
        raise ValueError("expected each entry once")
    return values


def _non_empty(values: tuple[T, ...]) -> tuple[T, ...]:
    if not values:
        raise ValueError("expected a non-empty list")
    return values


# Integers and numbers as YAML writes them: `true` and "45" are not numbers (pydantic's lax mode would convert them).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]
UniqueTuple = Annotated[tuple[T, ...], AfterValidator(_unique)]
"""A list in YAML, each entry at most once."""
NonEmptyTuple = Annotated[tuple[T, ...], AfterValidator(_non_empty), AfterValidator(_unique)]
"""A non-empty list in YAML, each entry once."""


def _plain_name(name: str) -> str:
    # The name is a directory under an output directory: a path separator or '..' would write elsewhere.
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ValueError("expected a plain name of letters, digits, '_', '.' and '-' (not '.' or '..')")
    return name


def _known_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"expected a model preset, one of {list(PRESETS)}")
    return name


def matching(pattern: str, expected: str) -> AfterValidator:
    """A validator of a string that must match ``pattern`` whole; a mismatch says ``expected``."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


PlainName = Annotated[str, AfterValidator(_plain_name)]
"""The name of an output directory (an experiment's or a sweep's id): letters, digits, '_', '.' and '-'."""
PresetName = Annotated[str, AfterValidator(_known_preset)]
"""The name of a model preset (:data:`stream_trapti.workloads.config.PRESETS`)."""


# pydantic's own wording for a few error types, said in a YAML user's terms.
_EXPECTED = {
    "path_type": "expected a path (a string)",
    "tuple_type": "expected a list",
    "invalid_key": "expected a string key",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "dataclass_type": "expected a mapping of keys",
}
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def config_error(error: ValidationError, source: str, keys: Collection[str]) -> ConfigError:
    """``error`` as one line naming ``source`` (the file), the key path, what was expected and the value given: the
    first problem, with how many more there are. Unknown keys are reported together, with the allowed ``keys``."""
    details = error.errors(include_url=False)
    unknown = [_key_path(d["loc"]) for d in details if d["type"] in _UNKNOWN_KEY]
    if unknown:
        message = f"unknown key(s) {unknown}; allowed keys are {sorted(keys)}"
        rest = len(details) - len(unknown)
    else:
        message, rest = _describe(details[0]), len(details) - 1
    return ConfigError(f"{source}: {message}" + (f" (and {rest} more)" if rest else ""))


def parse_config(model: type[M], data: Any, source: str) -> M:
    """``model`` validated from ``data``, a mapping of its keys; a bad key or value is a :class:`ConfigError` naming
    ``source`` (the file) and the key."""
    try:
        return model.model_validate(dict(data) if isinstance(data, Mapping) else data)
    except ValidationError as error:
        raise config_error(error, source, model.model_fields) from None


def _describe(detail: ErrorDetails) -> str:
    path = _key_path(detail["loc"])
    if detail["type"] == "missing":
        return f"key '{path}' is required"
    expected = _EXPECTED.get(detail["type"]) or _expected(detail["msg"])
    if not path:  # the whole document is not a mapping, or a check across keys failed (its message names them)
        return f"{expected}, got a {type(detail['input']).__name__}" if detail["type"] in _EXPECTED else expected
    return f"key '{path}': {expected}, got {_shown(detail['input'])}"


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``('banks', 0)`` as ``banks[0]``, ``('a', 'b')`` as ``a.b``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) and path else f"{'.' if path else ''}{part}"
    return path


def _expected(message: str) -> str:
    """pydantic's message (``Input should be …``, or a validator's ``Value error, …``) as ``expected …``."""
    for prefix, replacement in (("Value error, ", ""), ("Input should be ", "expected ")):
        if message.startswith(prefix):
            message = replacement + message.removeprefix(prefix)
    for comparison in ("greater", "less"):  # "expected greater than 0" -> "expected a value greater than 0"
        message = message.replace(f"expected {comparison}", f"expected a value {comparison}")
    return message


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in the file at ``path``, of any shape (None when empty); an unreadable or malformed file is
    an :class:`InputFileError` naming it (``what`` says which input it is)."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputFileError(f"{what} {path}: cannot read it ({one_line(error)})") from error


def load_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping of keys in the YAML file at ``path``; an empty file is an empty mapping. A missing, unreadable or
    malformed file is an :class:`InputFileError`, a document that is not a mapping a :class:`ConfigError`, each
    naming the file (``what`` says which input it is, e.g. ``"sweep YAML"``)."""
    path = check_file(path, what)
    data = read_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {what} keys, got a {type(data).__name__}")
    return data
