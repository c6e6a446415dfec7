"""YAML as the configs and ``--set`` values are read: strictly, with errors that say where.

PyYAML's ``safe_load`` keeps the last of two equal keys in one mapping without a word, and its
syntax errors end in a parser traceback. :func:`load_yaml` refuses a repeated key and turns every
YAML error into a ValueError naming the source (a config file, or ``--set key``), the line and the
key the error sits under, e.g. ``configs/mini.yaml, line 12 (key '04_meta_saliency.train'): ...``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping (block or flow style)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} twice (first on line {first[key].line + 1}); a repeated key would "
                    "silently replace the first value: keep one", key_node.start_mark)
            first[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


#: A block-mapping key at the start of a line: indent, optional list dash, the key (plain or quoted).
_KEY = re.compile(r"""^([ \t]*)(?:-[ \t]+)?('[^']*'|"[^"]*"|[^\s#'"{}\[\],:][^#:]*?)[ \t]*:(?:[ \t]|$)""")


def key_path(text: str, line: int) -> str:
    """The dotted path of the block-mapping keys enclosing 0-based ``line`` of ``text`` (the key on
    that line included), e.g. ``04_meta_saliency.train``; "" at the top level."""
    stack: list[tuple[int, str]] = []
    for raw in text.splitlines()[:line + 1]:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" \t"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        match = _KEY.match(raw)
        if match:
            stack.append((indent, match.group(2).strip("'\"")))
    return ".".join(key for _, key in stack)


def _describe(error: yaml.MarkedYAMLError, text: str, source: str) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"{source}, line {mark.line + 1}" if mark is not None else source
    # an unclosed bracket (or a line with no colon) is reported where the parser gave up: the key is
    # the one on the line that opened it
    opened = any(w in (error.context or "") for w in ("flow", "simple key")) and error.context_mark is not None
    anchor = error.context_mark if opened else mark
    path = key_path(text, anchor.line) if anchor is not None else ""
    if path:
        where += f" (key {path!r})"
    problem = error.problem or str(error)
    if "'\\t'" in problem:
        problem += " (YAML indents with spaces; replace the tab)"
    if error.context and error.context_mark is not None and error.problem_mark is not None \
            and error.context_mark.line != error.problem_mark.line \
            and not isinstance(error, yaml.constructor.ConstructorError):
        problem += f", {error.context} that starts on line {error.context_mark.line + 1}"
    return f"{where}: {problem}"


def load_yaml(text: str, source: str) -> Any:
    """``text`` parsed by :class:`StrictLoader`.

    Raises:
        ValueError: a YAML syntax error or a repeated key, naming ``source``, the line and the key.
    """
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as e:
        raise ValueError(_describe(e, text, source)) from None
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: {e}") from None


__all__ = ["StrictLoader", "key_path", "load_yaml"]
