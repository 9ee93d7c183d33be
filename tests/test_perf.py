"""Speed measurement (`dreamflow perf`): the throughput rows on the CPU and their stand-in mesh."""

from .conftest import ROOT


def test_throughput_counts_unet_calls_per_method(monkeypatch):
    from dreamflow.perf.throughput import measure

    monkeypatch.chdir(ROOT)
    overrides = {"extract.target_faces": 300, "stage2.resolution": 32}
    sds = measure("config/pipeline/toy.yaml", "stage2", "sds", steps=2, warmup=1, overrides=overrides)
    apfo = measure("config/pipeline/toy.yaml", "stage2", "apfo", steps=2, warmup=1, overrides=overrides)
    # SDS: one batched CFG call. APFO: CFG + the source model + one LoRA training step.
    assert sds["unet_calls_per_iteration"] == 1 and apfo["unet_calls_per_iteration"] == 3
    assert 0 < sds["unet_share"] < 1 and sds["seconds_per_iteration"] > 0 and sds["peak_rss_mb"] > 100
    assert apfo["backend"] == "rasterizer=torch, hash_grid=torch"


def test_throughput_stand_in_mesh_has_the_face_budget_above_and_below_an_icosphere():
    """paper.yaml's 100k-face budget is more than a 5-times subdivided icosphere has (20,480): the
    stand-in mesh must be subdivided up to it, not 'decimated' up (which trimesh refuses)."""
    from dreamflow.config import load_config
    from dreamflow.perf.throughput import _mesh_model

    for faces in (300, 100_000):
        config = load_config(ROOT / "config" / "paper.yaml", {"extract.target_faces": faces, "device": "cpu"})
        assert len(_mesh_model(config).faces) == faces
