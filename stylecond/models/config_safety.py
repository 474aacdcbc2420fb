"""Loading a stored model config (an export's ``config.yaml``, a checkpoint's ``stylecond_config``) runs no code
the caller did not choose.

A config names classes by ``class_path`` and jsonargparse imports and instantiates them, so an untrusted
file could name any importable callable. Before anything is built, :func:`checked_config`:

- accepts only classes defined in stylecond's own packages (``stylecond``, ``datamodules``) and the class
  paths the caller lists in ``allow_class_paths``;
- turns every ``trust_remote_code`` off unless the caller passes ``trust_remote_code=True`` (then the
  config's own value applies);
- refuses ``pipe:`` URLs (a shell command per shard) anywhere in the config.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TRUSTED_PACKAGES", "checked_config", "read_config_file"]

#: class paths under these packages are stylecond's own
TRUSTED_PACKAGES = ("stylecond", "datamodules")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The ``{class_path, init_args}`` mapping in the YAML file ``path``; a ValueError naming the file when it
    is empty, not YAML or not a mapping (never a parser traceback)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        config = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ValueError(f"{file} is not a text file: expected a YAML model config") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"{file} is not valid YAML{where}: {problem}") from None
    if config is None:
        raise ValueError(f"{file} is empty: expected a YAML model config with 'class_path' and 'init_args'")
    if not isinstance(config, dict) or "class_path" not in config:
        got = type(config).__name__ if not isinstance(config, dict) else f"keys {sorted(map(str, config))}"
        raise ValueError(f"{file} is not a model config: expected a mapping with 'class_path', got {got}")
    return config


def checked_config(
    config: dict[str, Any],
    *,
    source: str,
    allow_class_paths: Iterable[str] = (),
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """A copy of ``config`` that is safe to instantiate (see the module docstring).

    Args:
        config: the stored ``{class_path, init_args}`` config.
        source: what it was read from (named in errors and warnings).
        allow_class_paths: further class paths (exact, e.g. ``"mypkg.codecs.MyCodec"``) the caller trusts.
        trust_remote_code: let parts whose config asks for repository code run it.

    Raises:
        ValueError: naming the field of a class path outside the allow-list or of a ``pipe:`` URL.
    """
    allowed = set(allow_class_paths)
    out = copy.deepcopy(config)
    turned_off: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                field = f"{where}.{key}" if where else str(key)
                if key == "class_path":
                    _check_class_path(value, field, source, allowed)
                elif key == "trust_remote_code" and value is True and not trust_remote_code:
                    node[key] = False
                    turned_off.append(field)
                visit(value, field)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{where}[{i}]")
        elif isinstance(node, str) and node.strip().startswith("pipe:"):
            raise ValueError(
                f"{source}: {where} is a pipe: URL ({node[:60]!r}); a loaded config may not run commands. "
                "Give data paths on the command line instead"
            )

    visit(out, "")
    if turned_off:
        warnings.warn(
            f"{source}: {', '.join(turned_off)} asks for repository code; it stays off unless you pass "
            "trust_remote_code=True (--trust-remote-code)",
            stacklevel=3,
        )
    return out


def _is_own_class(path: str) -> bool:
    """``path`` names a class defined in one of stylecond's packages (not a name one of them imports)."""
    if path.split(".")[0] not in TRUSTED_PACKAGES or "." not in path:
        return False
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    obj = getattr(module, name, None)
    return isinstance(obj, type) and obj.__module__.split(".")[0] in TRUSTED_PACKAGES


def _check_class_path(value: Any, field: str, source: str, allowed: set[str]) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{source}: {field} must be a string class path, got {type(value).__name__}")
    if value in allowed or _is_own_class(value):
        return
    raise ValueError(
        f"{source}: {field} names {value!r}, which is not a stylecond class. Loading runs only stylecond's "
        "own classes; if you trust this one, pass allow_class_paths=[...] (--allow-class-path)"
    )
