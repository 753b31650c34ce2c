"""The vector files and their generators, as the vector tests read them (tests/vectors/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def cases(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load(name)["cases"]
    assert len(found) > 0, f"{name} holds no cases"
    return found


def generator(name: str) -> ModuleType:
    """``tests/vectors/<name>.py`` as a module (its shared ``vectorfiles`` helper importable as when run)."""
    if str(VECTORS) not in sys.path:
        sys.path.append(str(VECTORS))
    spec = importlib.util.spec_from_file_location(name, VECTORS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
