"""Reading a JSON object from a node/RUN_DIR file, naming the file and line when it is not one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.errors import BadInputError
from training.io import read_json

__all__ = ["read_json_object"]


def read_json_object(path: Path, error: type[BadInputError] = BadInputError) -> dict[str, Any]:
    """The JSON object at ``path``; ``error`` (``path:line: ...``) if it is not valid JSON or not
    an object. A missing file raises ``FileNotFoundError`` (callers decide what absence means).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "k.json"
    >>> _ = p.write_text('{"a":\\n ]')
    >>> read_json_object(p)
    Traceback (most recent call last):
    ...
    training.errors.BadInputError: ...k.json:2: not valid JSON (Expecting value)
    """
    try:
        data = read_json(path)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise error(f"{path}:1: expected a JSON object")
    return data
