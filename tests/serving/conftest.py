"""Serving tests: ``from _serving import Server`` (helpers in tests/serving/_serving.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
