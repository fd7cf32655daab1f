"""The till's cold start: the sale screen comes up without loading pydantic. The protocol's
models (~125 ms to import) are needed only by the sync worker and the order screens, which
load them when they first run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module", ["pos.store", "pos.store.orders", "pos.services.sale", "pos.ui.app"]
)
def test_cold_start_modules_do_not_load_pydantic(module: str) -> None:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module('{module}')\n"
        "loaded = sorted(m for m in sys.modules if m == 'pydantic' or m.startswith("
        "('pydantic.', 'sync.protocol.messages')))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_check_sees_pydantic_when_it_is_loaded() -> None:
    code = "import pos.store.orders as o, sys\no.apply_change\nimport sync.protocol as p\np.OrderRow\nassert 'pydantic' in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
