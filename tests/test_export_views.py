"""GPTEval3D's layout (`dreamflow export-views`): threestudio's test cameras, the files its tournament loader
reads, and normal maps that encode the surface, on a sphere mesh saved as a stage-3 checkpoint (seconds)."""

import math
import re

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from dreamflow.cli import main
from dreamflow.config import load_config, to_dict
from dreamflow.export.views import GPTEVAL3D, layout_cameras, render_colour_and_normals
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.io import save_checkpoint
from dreamflow.render.cameras import camera_rays

SPHERE_RADIUS = 0.5


def sphere_checkpoint(path, config, prompt="a blue sphere", stage="stage3", subdivisions=1):
    """A stage-3 checkpoint of an icosphere (the colour field as initialised); 80 faces unless asked for more."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=SPHERE_RADIUS)
    model = TexturedMesh(torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces), config)
    save_checkpoint({"stage": stage, "prompt": prompt, "seed": 0, "config": to_dict(config),
                     "model": model.state_dict()}, path)
    return model


def threestudio_test_c2w(views=120, elevation_deg=15.0, distance=1.5):
    """threestudio/data/uncond.py @ 28d9d80, RandomCameraDataset (test split), written out here independently."""
    azimuth = torch.linspace(0, 360.0, views) * math.pi / 180
    elevation = torch.full_like(azimuth, elevation_deg) * math.pi / 180
    position = torch.stack([distance * torch.cos(elevation) * torch.cos(azimuth),
                            distance * torch.cos(elevation) * torch.sin(azimuth),
                            distance * torch.sin(elevation)], dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(position)
    lookat = torch.nn.functional.normalize(-position, dim=-1)
    right = torch.nn.functional.normalize(torch.cross(lookat, up, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.cross(right, lookat, dim=-1), dim=-1)
    return torch.stack([right, up, -lookat], dim=-1), position


def test_the_cameras_are_threestudios_test_cameras():
    cameras = layout_cameras(GPTEVAL3D)
    rotation, position = threestudio_test_c2w()
    assert len(cameras) == 120
    assert torch.allclose(cameras.c2w[:, :3, :3], rotation, atol=1e-5)
    assert torch.allclose(cameras.c2w[:, :3, 3], position, atol=1e-5)
    assert torch.allclose(torch.rad2deg(cameras.fovy), torch.full((120,), 70.0))
    # Both ends of linspace(0, 360, 120): the last view repeats the first; azimuth 0 looks from +x, z is up.
    assert torch.allclose(cameras.c2w[0], cameras.c2w[119], atol=1e-5)
    assert cameras.positions[0, 0] > 1.4 and cameras.c2w[0, 2, 1] > 0.9


def test_export_views_writes_gpteval3ds_layout(tmp_path):
    config = load_config("config/pipeline/toy.yaml")
    sphere_checkpoint(tmp_path / "ckpt.pt", config)
    prompts = tmp_path / "suite.txt"
    prompts.write_text("# ids as fetched\n3\ta red cube\n7\ta blue sphere\n")
    code = main(["export-views", "--layout", "gpteval3d", "--config", "config/pipeline/toy.yaml", "--ckpt",
                 str(tmp_path / "ckpt.pt"), "--prompts", str(prompts), "--out", str(tmp_path / "root"),
                 "--resolution", "16"])
    assert code == 0
    methods = tmp_path / "root" / "methods"
    folder = methods / "apfo" / "7" / "0"
    # GPTEval3D's loader reads every entry of methods/<method>/ as an integer prompt id, then "rgb_%d.png" % i.
    assert [int(entry.name) for entry in (methods / "apfo").iterdir()] == [7]
    names = sorted(p.name for p in folder.iterdir())
    expected = {f"{kind}_{i}.png" for kind in ("rgb", "normal") for i in range(120)}
    assert set(names) - {"prompt.txt"} == expected and len(names) == 241
    assert not any(re.fullmatch(r"(rgb|normal)_0\d+\.png", name) for name in names)  # unpadded
    assert (folder / "prompt.txt").read_text() == "a blue sphere\n"
    for name in ("rgb_0.png", "normal_0.png", "rgb_119.png", "normal_60.png"):
        image = Image.open(folder / name)
        assert image.mode == "RGB" and image.size == (16, 16)
    assert np.array_equal(np.asarray(Image.open(folder / "normal_0.png")), np.asarray(Image.open(folder / "normal_119.png")))


def test_export_views_refuses_a_wrong_id_or_an_unfinished_checkpoint(tmp_path, capsys):
    config = load_config("config/pipeline/toy.yaml")
    sphere_checkpoint(tmp_path / "ckpt.pt", config)
    sphere_checkpoint(tmp_path / "stage2.pt", config, stage="stage2")
    prompts = tmp_path / "suite.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    common = ["export-views", "--layout", "gpteval3d", "--config", "config/pipeline/toy.yaml", "--out",
              str(tmp_path / "root"), "--resolution", "8"]
    assert main([*common, "--ckpt", str(tmp_path / "ckpt.pt"), "--prompts", str(prompts), "--prompt-id", "0"]) == 2
    assert "--prompt-id 0 does not match" in capsys.readouterr().err
    assert main([*common, "--ckpt", str(tmp_path / "stage2.pt"), "--prompt-id", "1"]) == 2
    assert "is a 'stage2' checkpoint" in capsys.readouterr().err
    assert main([*common, "--ckpt", str(tmp_path / "ckpt.pt")]) == 2
    assert "pass --prompt-id ID, or --prompts FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # GPTEval3D reads every folder name as an integer
        main([*common, "--ckpt", str(tmp_path / "ckpt.pt"), "--prompt-id", "abc"])
    assert "'abc' is not a prompt id" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_normal_maps_encode_the_surface_and_the_asset_is_scaled_to_threestudios_scene(tmp_path):
    """On a sphere, the decoded normal at each covered pixel is the direction of the point its ray hits on the
    sphere (scaled by 1 / nerf.radius, threestudio's scene radius 1 over ours 0.8); background is white in RGB
    and black in the normal map, as threestudio writes them."""
    config = load_config("config/pipeline/toy.yaml", {"nerf.radius": 0.8})
    model = sphere_checkpoint(tmp_path / "ckpt.pt", config, subdivisions=3).eval()
    cameras = layout_cameras(GPTEVAL3D)[[0, 30, 60, 90]]
    resolution, scale = 48, 1 / 0.8
    colour, normal, alpha = render_colour_and_normals(model, cameras, resolution, scale)
    normal = torch.as_tensor(np.asarray(normal.clamp(0, 1) * 255).round() / 255)  # as written to the PNG
    origins, directions = camera_rays(cameras, resolution, resolution)
    radius = SPHERE_RADIUS * scale
    along = -(origins * directions).sum(-1)  # ray parameter of the point closest to the centre
    miss = (origins + along[..., None] * directions).norm(dim=-1)  # that point's distance from the centre
    hit_t = along - (radius**2 - miss.clamp(max=radius) ** 2).sqrt()
    truth = torch.nn.functional.normalize(origins + hit_t[..., None] * directions, dim=-1)
    inside = (miss < 0.95 * radius) & (alpha[..., 0] > 0.999)
    outside = miss > 1.05 * radius
    assert inside.sum() > 4 * 300 and outside.sum() > 4 * 1000
    decoded = torch.nn.functional.normalize(normal * 2 - 1, dim=-1)
    angle = torch.rad2deg(torch.acos((decoded * truth).sum(-1).clamp(-1, 1)))[inside]
    assert angle.mean() < 1.5 and angle.max() < 5.0, (angle.mean(), angle.max())
    assert torch.all(normal[outside] == 0) and torch.all(colour[outside] == 1.0)
    # Unscaled (scale 1), the silhouette's area shrinks as a sphere's under perspective: its image radius is
    # tan(asin(r / distance)), so the area ratio is 0.595 (not 0.8^2): the scale reached the render.
    _, _, small = render_colour_and_normals(model, cameras[:1], resolution, 1.0)
    image_radius = lambda r: math.tan(math.asin(r / GPTEVAL3D.distance))  # noqa: E731
    expected = (image_radius(SPHERE_RADIUS) / image_radius(radius)) ** 2
    assert small.sum() / alpha[:1].sum() == pytest.approx(expected, abs=0.02)


def test_normal_maps_hold_face_normals_not_positions_on_an_offset_box(tmp_path):
    """A box off the origin with one set of vertices per face: every covered pixel decodes to one of the six
    face normals, the +x and top faces both seen from view 0 (azimuth 0, elevation 15). A map of positions
    (which coincide with normals only on a sphere about the origin) would vary across each face."""
    config = load_config("config/pipeline/toy.yaml")
    box = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    box.apply_translation((0.12, -0.08, 0.05))
    box.unmerge_vertices()
    model = TexturedMesh(torch.as_tensor(box.vertices, dtype=torch.float32), torch.as_tensor(box.faces), config).eval()
    _, normal, alpha = render_colour_and_normals(model, layout_cameras(GPTEVAL3D)[[0]], 96)
    covered = alpha[0, ..., 0] > 0.999
    decoded = torch.nn.functional.normalize(normal[0][covered] * 2 - 1, dim=-1)
    axes = torch.cat([torch.eye(3), -torch.eye(3)])
    angle = torch.rad2deg(torch.acos((decoded @ axes.T).clamp(-1, 1)))  # [pixels, 6]
    nearest = angle.min(dim=1)
    assert covered.sum() > 300 and nearest.values.max() < 3.0, nearest.values.max()
    seen = {int(i) for i in nearest.indices.unique()}
    assert {0, 2} <= seen and 3 not in seen, seen  # +x and +z faces face the camera; -x never does
