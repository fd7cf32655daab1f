"""The import directions of the design: the core runs without the UI, and the scanner and sync
engine stand on their own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package (as a path prefix) -> module prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "scanner": ("pos", "textual", "sync", "hq"),
    "sync": ("pos", "textual", "hq", "scanner"),
    "hq": ("pos", "textual", "scanner", "sync.engine", "sync.client"),
    "pos/domain": (
        "textual",
        "pos.store",
        "pos.services",
        "pos.ui",
        "sqlite3",
        "sqlite_utils",
        "httpx",
        "cv2",
    ),
    "pos/store": ("textual", "pos.services", "pos.ui"),
    "pos/services": ("textual", "pos.ui"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations() -> list[str]:
    found = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imported_modules(path):
                for prefix in banned:
                    if name == prefix or name.startswith(prefix + "."):
                        found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_import_directions_hold() -> None:
    assert violations() == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import textual.app\nfrom pos.store import db\n")
    assert {"textual.app", "pos.store"} <= imported_modules(bad)


@pytest.mark.parametrize("module", ["pos.domain", "pos.store", "pos.services", "scanner", "sync"])
def test_core_modules_load_without_textual(module: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module('{module}')\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if m.startswith('textual'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
