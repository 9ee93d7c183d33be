"""Fixtures of the lab's tests (the product's tests live in tests/)."""

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TOY_PRIOR = ROOT / "models" / "toy-sd21"
TOY_REFINER = ROOT / "models" / "toy-sdxl-refiner"
os.environ.setdefault("DREAMFLOW_NO_PROGRESS", "1")
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMFLOW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def toy_prior():
    from dreamflow.config import PriorConfig
    from dreamflow.priors import load_prior

    return load_prior(PriorConfig(pretrained=str(TOY_PRIOR)), "cpu")
