"""sync.protocol is one namespace over three modules; the light ones (the payload hash, the
catalogue format) load without pydantic, so a till's journal and its domain start quickly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_payload_hash_and_the_catalogue_rules_load_without_pydantic() -> None:
    _run(
        "import sys\n"
        "from sync.protocol import canonical_json, payload_hash\n"
        "import sync.protocol.catalog_file, pos.domain.gtin, pos.domain.money, pos.domain.cart\n"
        "assert payload_hash({'a': 1}) == payload_hash({'a': 1})\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )


def test_the_message_models_are_still_importable_from_the_package() -> None:
    _run(
        "import sys\n"
        "from sync import protocol as p\n"
        "from sync.protocol import PushRequest, CLOCK_SKEW_LIMIT_S, canonical_json\n"
        "from sync.protocol.messages import PushRequest as direct\n"
        "assert PushRequest is direct is p.PushRequest\n"
        "assert p.canonical_json is canonical_json\n"
        "assert CLOCK_SKEW_LIMIT_S == 300.0\n"
        "assert 'ErrorBody' in dir(p)\n"
        "try:\n"
        "    p.NoSuchMessage\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('unknown names must raise AttributeError')\n"
    )
