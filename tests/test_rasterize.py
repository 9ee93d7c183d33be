import pytest
import torch
import trimesh

from dreamflow.render.cameras import CameraConfig, sample_cameras
from dreamflow.render.rasterize import TorchRasterizer, nvdiffrast_available
from dreamflow.toyworld import ToyScene, render_scene


def flat_shade(attributes, mask):
    return attributes[..., :3]


def test_silhouette_matches_the_analytic_cube():
    mesh = trimesh.creation.box(extents=(0.72, 0.72, 0.72))
    vertices, faces = torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)
    cameras = sample_cameras(CameraConfig(), 4, torch.Generator().manual_seed(1))
    out = TorchRasterizer()(vertices, faces, vertices, cameras, 64, flat_shade, torch.ones(3))
    truth = render_scene(ToyScene("cube", "red"), cameras, 64, supersample=4)["mask"][..., 0]
    covered = (out.face_id >= 0).float()
    assert abs(covered.sum() - truth.sum()) / truth.sum() < 0.01
    assert ((covered > 0.5) == (truth > 0.5)).float().mean() > 0.99


def test_a_fine_mesh_is_opaque_inside_its_silhouette():
    """Triangles of about a pixel (many own no pixel centre) must not let the background through:
    only pixels next to the silhouette are soft."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.5)  # 20k faces, ~1 px each at 64 px
    vertices, faces = torch.as_tensor(mesh.vertices).float(), torch.as_tensor(mesh.faces)
    cameras = sample_cameras(CameraConfig(), 2, torch.Generator().manual_seed(0))
    out = TorchRasterizer()(vertices, faces, vertices, cameras, 64, flat_shade, torch.ones(3))
    covered = out.face_id >= 0  # pixel centres on the surface
    inner = -torch.nn.functional.max_pool2d(-covered.float()[:, None], 3, 1, 1)[:, 0] > 0.5  # and their 3x3
    assert inner.sum() > 1000 and (out.alpha[..., 0][inner] == 1).all()
    assert ((out.alpha > 0) & (out.alpha < 1)).sum() < 0.2 * covered.sum()  # the silhouette band only


def test_vertex_gradients_match_finite_differences():
    torch.manual_seed(0)
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=0.5)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float64)
    faces = torch.tensor(mesh.faces)
    cameras = sample_cameras(CameraConfig(), 1, torch.Generator().manual_seed(2))
    colours = torch.rand(len(vertices), 3, dtype=torch.float64)
    weights = torch.rand(1, 24, 24, 3, dtype=torch.float64)
    rasterizer = TorchRasterizer()

    def render(v):
        attributes = torch.cat([colours, v], dim=-1)
        return rasterizer(v.float(), faces, attributes.float(), cameras, 24, flat_shade, torch.ones(3))

    v = vertices.clone().requires_grad_(True)
    (render(v).rgb.double() * weights).sum().backward()
    analytic = v.grad
    assert analytic.abs().sum() > 0
    # Compare along random directions with a step small enough that no pixel changes triangle: the
    # soft edge is continuous except when a triangle enters a pixel's 3x3 candidate set.
    checked = 0
    for seed in range(6):
        direction = torch.randn(vertices.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        direction /= direction.norm()
        h = 1e-4
        plus, minus = render(vertices + h * direction), render(vertices - h * direction)
        if (plus.face_id != minus.face_id).any():
            continue
        numeric = ((plus.rgb.double() - minus.rgb.double()) * weights).sum() / (2 * h)
        assert torch.isclose((analytic * direction).sum(), numeric, rtol=0.1, atol=0.1), seed
        checked += 1
    assert checked >= 4


def test_silhouette_area_gradient_matches_growth():
    """d(covered area)/d(scale) from the soft silhouette equals the finite difference of the area."""
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=0.45)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces)
    cameras = sample_cameras(CameraConfig(), 2, torch.Generator().manual_seed(3))

    def area(scale):
        v = vertices * scale
        out = TorchRasterizer()(v, faces, torch.zeros(len(v), 3), cameras, 48, lambda a, m: torch.zeros_like(a),
                                torch.ones(3))
        return out.alpha.sum()

    scale = torch.ones((), requires_grad=True)
    area(scale).backward()
    numeric = (area(torch.tensor(1.02)) - area(torch.tensor(0.98))) / 0.04
    assert scale.grad > 0
    assert torch.isclose(scale.grad, numeric, rtol=0.15)


@pytest.mark.gpu
@pytest.mark.skipif(not nvdiffrast_available(), reason="nvdiffrast parity needs CUDA and the nvdiffrast module")
def test_nvdiffrast_parity():
    from dreamflow.render.rasterize import NvdiffrastRasterizer

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32, device="cuda")
    faces = torch.tensor(mesh.faces, device="cuda")
    cameras = sample_cameras(CameraConfig(), 2, torch.Generator().manual_seed(0)).to("cuda")
    background = torch.ones(3, device="cuda")
    colours = torch.rand(len(vertices), 3, device="cuda")
    weights = torch.rand(2, 64, 64, 3, device="cuda")
    outputs, gradients = [], []
    for rasterizer in (TorchRasterizer(), NvdiffrastRasterizer()):
        attributes = colours.clone().requires_grad_(True)
        out = rasterizer(vertices, faces, attributes, cameras, 64, flat_shade, background)
        (out.rgb * weights).sum().backward()
        outputs.append(out)
        gradients.append(attributes.grad)
    a, b = outputs
    assert ((a.face_id >= 0) == (b.face_id >= 0)).float().mean() > 0.99
    assert (a.rgb - b.rgb).abs().mean() < 0.02 and (a.alpha - b.alpha).abs().mean() < 0.02
    # Vertex colours get the same gradient from both (interior interpolation; the edges differ by design).
    assert torch.nn.functional.cosine_similarity(gradients[0].flatten(), gradients[1].flatten(), dim=0) > 0.98


def test_box_downsample_averages_a_supersampled_render_to_the_stage_resolution():
    from dreamflow.render.volume import RenderOutput, box_downsample

    image = torch.arange(2 * 4 * 4 * 3, dtype=torch.float32).view(2, 4, 4, 3)
    alpha = torch.ones(2, 4, 4, 1)
    small = box_downsample(RenderOutput(image, alpha, alpha, None), 2)
    assert small.rgb.shape == (2, 2, 2, 3) and small.albedo is None and (small.opacity == 1).all()
    assert torch.allclose(small.rgb[0, 0, 0], image[0, :2, :2].mean((0, 1)))
