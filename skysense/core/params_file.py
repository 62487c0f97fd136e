"""Reading ``params.yaml`` whole: an empty, cut-short or ambiguous params file is an error.

A params file that a crash, a full disk or an interrupted copy left empty or truncated often still
parses, and every missing key would silently take its default. So a params file must:

1. hold a configuration: an empty file (or one with only comments) is an error, not "defaults";
2. parse whole, as one YAML document without duplicate keys: an error names the line and column;
3. end with a newline: a file cut in the middle of a line is an error naming that line;
4. name every top-level section (``paths``, ``data``, ``validation``, ``model``, ``train``,
   ``eval``, ``registry``, ``predict``, ``pipeline``): a file cut between two lines lacks the
   sections after the cut. A section may be left to its defaults explicitly, as
   ``train: {}``; keys left out *inside* a section take their defaults.

``skysense config show --defaults > params.yaml`` writes a complete file of the defaults. Without
any params file (no ``./params.yaml`` and no ``--params``) the embedded defaults are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from skysense.core.errors import ConfigError

DEFAULTS_RECIPE = "skysense config show --defaults > params.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first given at line {seen[key] + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _syntax_error(path: Path, exc: yaml.YAMLError, cut_short: bool) -> ConfigError:
    hint = " The file ends without a newline: it may have been cut short." if cut_short else ""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = exc.problem or "syntax error"
        if exc.context:
            what = f"{what} ({exc.context})"
        return ConfigError(
            f"{path}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}; "
            f"fix the syntax there and run again.{hint}"
        )
    return ConfigError(f"{path}: not valid YAML ({type(exc).__name__}); fix the syntax.{hint}")


def read_params(path: str | Path, required: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The top-level mapping of a params file, checked to be whole (rules in the module doc).

    Args:
        path: the params file.
        required: the top-level sections a whole file names (``paths``, ``data``, ...).

    Returns:
        The parsed mapping, and the required top-level sections it does not name (the caller
        reports them after the values, see :func:`missing_sections_message`).

    Raises:
        ConfigError: the file is missing, unreadable, empty, not valid YAML (line and column
            named), has a duplicate key, or ends in the middle of a line.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: params file not found; pass --params PATH to an existing file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start}); a params file is YAML text, restore it "
            f"from version control or write a new one with `{DEFAULTS_RECIPE}`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the params file ({exc.strerror})") from None
    cut_short = bool(text) and not text.endswith("\n")
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no tags run
    except yaml.YAMLError as exc:
        raise _syntax_error(p, exc, cut_short) from None
    if loaded is None:
        raise ConfigError(
            f"{p}: the params file is empty; an empty file is what an interrupted write leaves, "
            "so it does not mean the defaults. Restore it from version control, or write the "
            f"defaults with `{DEFAULTS_RECIPE}`"
        )
    if cut_short:
        line = text.count("\n") + 1
        raise ConfigError(
            f"{p}: ends in the middle of line {line} (no newline at the end): the file looks cut "
            "short by an interrupted write. Restore it from version control; if it is complete, "
            "end it with a newline"
        )
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections (data, train, ...)")
    missing = [s for s in required if s not in loaded]
    return loaded, missing


def missing_sections_message(source: str, missing: list[str]) -> str:
    """The error for a params file that does not name every top-level section."""
    return (
        f"{source}: the params file does not name the section(s) {', '.join(missing)}; a file cut "
        "short loses the sections after the cut, so every section must be named. Add them (as "
        f"`{missing[0]}: {{}}` to take the defaults), or restore the file from version control "
        f"(`{DEFAULTS_RECIPE}` writes a complete file of the defaults)"
    )
