"""The lab's tests share the product tests' fixtures and settings (tests/conftest.py)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import TOY_PRIOR, TOY_REFINER, isolated_cache, toy_prior  # noqa: E402, F401
