import os
from pathlib import Path

import pytest
import torch

from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS  # noqa: F401 - the tests' CLIP

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DREAMFLOW_NO_PROGRESS", "1")
os.environ.setdefault("WANDB_SILENT", "true")
# One thread per pytest-xdist worker (the default run uses two), else up to two.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))

TOY_PRIOR = ROOT / "models" / "toy-sd21"
TOY_REFINER = ROOT / "models" / "toy-sdxl-refiner"
TOY_CLIP = ROOT / TOY_CLIP_WEIGHTS


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own text-embedding cache (tests of the cache itself share one on purpose)."""
    monkeypatch.setenv("DREAMFLOW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def toy_prior():
    from dreamflow.config import PriorConfig
    from dreamflow.priors import load_prior

    return load_prior(PriorConfig(pretrained=str(TOY_PRIOR)), "cpu")


def pytest_collection_modifyitems(config, items):
    """Longest modules first, so that under pytest-xdist (`--dist loadfile`) they overlap with the
    rest instead of running alone at the end: the SLURM test mostly waits on the scheduler."""
    first = ("test_slurm.py", "test_workflow.py")
    items.sort(key=lambda item: next((i for i, name in enumerate(first) if item.fspath.basename == name), len(first)))
