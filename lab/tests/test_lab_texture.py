"""Texture apart from geometry: the true albedo painted on a stage's geometry."""

import torch

from dreamflow.toyworld import parse_toy_prompt, render_scene


def test_texture_metrics_separate_the_texture_from_the_geometry():
    """The true albedo painted on a stage's geometry: its pattern error against the scene is that
    geometry's ceiling (near 0 on the true shape, worse on a warped one), and the stage's own texture
    is scored against it: 0 for the truth, about 1 for a flat colour."""
    import mcubes

    from dreamflow.config import load_config
    from dreamflow.evaluate.toy_metrics import held_out_cameras, image_metrics, render_like_truth
    from dreamflow_lab.texture import painted_with_truth, texture_metrics
    from dreamflow.geometry.mesh import TexturedMesh
    from dreamflow.training.stages import STAGES, StageInputs

    config = load_config("config/pipeline/toy.yaml", {"device": "cpu"})
    scene = parse_toy_prompt("a red sphere with blue stripes")
    cameras = held_out_cameras(config.camera, 4)
    truth = render_scene(scene, cameras, 96)
    axis = torch.linspace(-0.8, 0.8, 80)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    vertices, faces = mcubes.marching_cubes(-scene.sdf(grid.reshape(-1, 3)).view(80, 80, 80).numpy(), 0.0)
    vertices = torch.as_tensor(vertices / 79 * 1.6 - 0.8)

    def score(vertices: torch.Tensor, paint: bool) -> dict:
        model = TexturedMesh(vertices, torch.as_tensor(faces.astype("int64")), config).eval()
        if paint:
            with painted_with_truth(model, scene):
                view = render_like_truth(model, cameras, 96)
        else:
            view = render_like_truth(model, cameras, 96)  # the untrained colour field: nearly flat
        return texture_metrics(model, scene, cameras, 96, view, truth)

    exact, flat = score(vertices, paint=True), score(vertices, paint=False)
    assert exact["texture_pattern_error"] < 1e-3 and exact["pattern_ceiling"] < 0.1
    # Sampled at pixel centres instead of like the truth, the same painted mesh loses most of its score.
    model = TexturedMesh(vertices, torch.as_tensor(faces.astype("int64")), config).eval()
    with torch.no_grad(), painted_with_truth(model, scene):
        aliased = model.render_views(cameras, 96)
    assert image_metrics(scene, cameras, aliased.opacity, aliased.albedo, 96, truth)["pattern_error"] > 0.3
    assert flat["texture_pattern_error"] > 0.9 and abs(flat["pattern_ceiling"] - exact["pattern_ceiling"]) < 1e-6
    warped = vertices * torch.tensor([1.25, 0.8, 1.0])  # a squashed sphere: the stripes bend in the image
    assert score(warped, paint=False)["pattern_ceiling"] > exact["pattern_ceiling"] + 0.2
    nerf = STAGES["stage1"].build_model(config, StageInputs()).eval()
    with torch.no_grad(), painted_with_truth(nerf, scene):
        assert "albedo" in vars(nerf.field)
    assert "albedo" not in vars(nerf.field)  # the learned albedo is back
