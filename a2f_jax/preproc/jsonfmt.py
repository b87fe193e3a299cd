"""The original's JSON layout for data_info.json (docs/preproc_artifacts.md): 4-space indent, insertion-ordered keys,
number lists on one line, string lists one item per line, other lists inline up to 120 characters."""

from __future__ import annotations

import json
from typing import Any


def dumps_pretty(obj: Any, indent: int = 4, max_len: int = 120, _level: int = 0) -> str:
    pad = " " * _level
    inner_pad = " " * (_level + indent)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return json.dumps(obj)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        body = ",\n".join(f"{inner_pad}{json.dumps(str(k))}: {dumps_pretty(v, indent, max_len, _level + indent)}" for k, v in obj.items())
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        if all(isinstance(v, (int, float)) for v in obj):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        if all(isinstance(v, str) for v in obj):
            return "[\n" + ",\n".join(inner_pad + json.dumps(v) for v in obj) + "\n" + pad + "]"
        one_line = "[" + ", ".join(dumps_pretty(v, indent, max_len, 0) for v in obj) + "]"
        if len(one_line) <= max_len:
            return one_line
        return "[\n" + ",\n".join(inner_pad + dumps_pretty(v, indent, max_len, _level + indent) for v in obj) + "\n" + pad + "]"
    raise TypeError(f"dumps_pretty: expected JSON types, found {type(obj).__name__}")
