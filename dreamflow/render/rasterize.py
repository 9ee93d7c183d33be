"""Differentiable mesh rasterisation: nvdiffrast (CUDA context) or a pure-PyTorch rasteriser.

Both back ends take world-space vertices, faces, per-vertex attributes and cameras, and return
interpolated attributes, a coverage/alpha map and triangle ids with the same shapes and image
convention (row 0 at the top, as the volume renderer). Vertex positions get gradients through
the perspective-correct barycentrics (interior) and through silhouette antialiasing:
* nvdiffrast: its analytic `antialias` of the shaded image;
* torch: soft coverage of the pixel centre by the triangles seen in its 3x3 neighbourhood,
  box-filter coverage clamp(0.5 + d / (2 sigma)) of the pixel centre at signed distance d from each
  visible triangle in its 3x3 neighbourhood, summed and clamped to 1, where that neighbourhood
  holds background (pixels farther inside are opaque); pixels just outside the silhouette take the
  nearest triangle's attributes. No pure-PyTorch equivalent of
  nvdiffrast's analytic antialiasing exists; this soft edge is our own scheme.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dreamflow.render.cameras import Cameras, mvp_matrix


@dataclass
class RasterOutput:
    rgb: torch.Tensor  # [B, H, W, 3] shaded and composited over the background
    alpha: torch.Tensor  # [B, H, W, 1] coverage in [0, 1]
    attributes: torch.Tensor  # [B, H, W, C] interpolated vertex attributes
    face_id: torch.Tensor  # [B, H, W] triangle index, -1 for background


def nvdiffrast_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


def to_clip(vertices: torch.Tensor, cameras: Cameras) -> torch.Tensor:
    """World vertices [V,3] -> clip coordinates [B,V,4]."""
    homogeneous = F.pad(vertices, (0, 1), value=1.0)
    return torch.einsum("vc,bdc->bvd", homogeneous, mvp_matrix(cameras).to(vertices.device))


def _screen(clip: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip [B,V,4] -> pixel coordinates [B,V,2] (x right, y down, pixel centres at +0.5) and w."""
    w = clip[..., 3:4]
    ndc = clip[..., :2] / w
    x = (ndc[..., 0] * 0.5 + 0.5) * resolution
    y = (0.5 - ndc[..., 1] * 0.5) * resolution
    return torch.stack([x, y], dim=-1), w[..., 0]


def _edge_functions(p: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Signed areas of (p, edge) for triangle corners tri [...,3,2] and points p [...,2] -> [...,3]."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]

    def cross(u0, u1, q):
        return (u1[..., 0] - u0[..., 0]) * (q[..., 1] - u0[..., 1]) - (u1[..., 1] - u0[..., 1]) * (q[..., 0] - u0[..., 0])

    return torch.stack([cross(b, c, p), cross(c, a, p), cross(a, b, p)], dim=-1)


class TorchRasterizer:
    """Brute-force z-buffer over face chunks (no grad), then differentiable barycentrics and soft edges."""

    def __init__(self, sigma: float = 0.5, max_elements: int = 1 << 22):
        self.sigma = sigma  # half-width of the soft edge in pixels (0.5: one pixel box filter)
        self.max_elements = max_elements

    @torch.no_grad()
    def _visible_faces(self, screen: torch.Tensor, w: torch.Tensor, faces: torch.Tensor, resolution: int) -> torch.Tensor:
        """Nearest triangle per pixel: each face tests only the pixels of its bounding box.

        Faces whose box fits in `tile` x `tile` pixels (nearly all of them at toy resolutions) are
        enumerated together as (face, pixel) pairs; larger ones are tested against every pixel in
        chunks. Depth is min-reduced per pixel, then the face at that depth is kept.
        """
        batch, tile = screen.shape[0], 16
        pixels_per_image = resolution * resolution
        tri = screen[:, faces]  # [B, F, 3, 2]
        tri_w = w[:, faces]  # [B, F, 3]
        lo = (tri.min(dim=2).values - 0.5).ceil().clamp(0, resolution - 1)
        hi = (tri.max(dim=2).values - 0.5).floor().clamp(-1, resolution - 1)
        extent = (hi - lo + 1).clamp(min=0)
        valid = (extent > 0).all(-1) & (tri_w > 1e-6).all(-1)
        small = valid & (extent <= tile).all(-1)
        large = valid & ~small
        offsets = torch.stack(torch.meshgrid(torch.arange(tile), torch.arange(tile), indexing="xy"), -1).view(-1, 2)
        offsets = offsets.to(screen.device).float()
        pair_pixel, pair_face, pair_depth = [], [], []
        b_index, f_index = small.nonzero(as_tuple=True)
        if len(b_index):
            pixel = lo[b_index, f_index][:, None, :] + offsets[None]  # [N, T*T, 2]
            inside_box = (offsets[None] < extent[b_index, f_index][:, None, :]).all(-1)
            self._test_pairs(pixel, tri[b_index, f_index], tri_w[b_index, f_index], inside_box, b_index, f_index,
                             resolution, pair_pixel, pair_face, pair_depth)
        b_index, f_index = large.nonzero(as_tuple=True)
        if len(b_index):
            coords = torch.arange(resolution, device=screen.device, dtype=torch.float32)
            grid = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), -1).view(1, -1, 2)
            chunk = max(1, self.max_elements // pixels_per_image)
            for start in range(0, len(b_index), chunk):
                bs, fs = b_index[start:start + chunk], f_index[start:start + chunk]
                pixel = grid.expand(len(bs), -1, -1)
                self._test_pairs(pixel, tri[bs, fs], tri_w[bs, fs], None, bs, fs, resolution,
                                 pair_pixel, pair_face, pair_depth)
        best_face = torch.full((batch * pixels_per_image,), -1, dtype=torch.long, device=screen.device)
        if pair_pixel:
            pixel, face, depth = torch.cat(pair_pixel), torch.cat(pair_face), torch.cat(pair_depth)
            best_depth = torch.full((batch * pixels_per_image,), float("inf"), device=screen.device)
            best_depth = best_depth.scatter_reduce(0, pixel, depth, reduce="amin")
            winner = depth <= best_depth[pixel]
            best_face = best_face.scatter_reduce(0, pixel[winner], face[winner], reduce="amax")
        return best_face.view(batch, resolution, resolution)

    @staticmethod
    def _test_pairs(pixel, tri, tri_w, mask, b_index, f_index, resolution, out_pixel, out_face, out_depth) -> None:
        """Inside test and perspective-correct depth of (face, pixel-centre) pairs; appends the hits."""
        centres = pixel + 0.5
        edges = _edge_functions(centres, tri[:, None])  # [N, K, 3]
        area = edges.sum(-1)
        inside = ((edges >= 0).all(-1) | (edges <= 0).all(-1)) & (area.abs() > 1e-12)
        if mask is not None:
            inside &= mask
        bary = edges / torch.where(area.abs() > 1e-12, area, torch.ones_like(area))[..., None]
        depth = 1.0 / (bary / tri_w[:, None]).sum(-1).clamp(min=1e-8)
        n, k = inside.nonzero(as_tuple=True)
        flat = b_index[n] * resolution * resolution + pixel[n, k, 1].long() * resolution + pixel[n, k, 0].long()
        out_pixel.append(flat)
        out_face.append(f_index[n])
        out_depth.append(depth[n, k])

    def _barycentrics(self, screen, w, faces, face_id, resolution, clamp: bool) -> torch.Tensor:
        """Perspective-correct barycentrics of each pixel centre in face `face_id` (differentiable)."""
        batch = screen.shape[0]
        coords = torch.arange(resolution, device=screen.device, dtype=torch.float32) + 0.5
        py, px = torch.meshgrid(coords, coords, indexing="ij")
        pixels = torch.stack([px, py], dim=-1).expand(batch, -1, -1, -1)
        safe = face_id.clamp(min=0)
        corner_index = faces[safe]  # [B,H,W,3]
        batch_index = torch.arange(batch, device=screen.device).view(-1, 1, 1, 1)
        tri = screen[batch_index, corner_index]  # [B,H,W,3,2]
        tri_w = w[batch_index, corner_index]  # [B,H,W,3]
        edges = _edge_functions(pixels, tri)
        area = edges.sum(-1, keepdim=True)
        area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
        bary = edges / area
        if clamp:
            bary = bary.clamp(min=0)
            bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-8)
        perspective = bary / tri_w
        return perspective / perspective.sum(-1, keepdim=True).clamp(min=1e-12), corner_index

    def _soft_coverage(self, screen, w, faces, face_id, resolution) -> tuple[torch.Tensor, torch.Tensor]:
        """Alpha from the 3x3 neighbourhood's triangles, and the nearest triangle for every pixel."""
        batch = screen.shape[0]
        padded = F.pad(face_id.float()[:, None], (1, 1, 1, 1), value=-1)
        neighbours = F.unfold(padded, 3).view(batch, 9, resolution, resolution).permute(0, 2, 3, 1).long()
        sorted_ids, _ = neighbours.sort(dim=-1)
        unique = torch.cat([torch.ones_like(sorted_ids[..., :1], dtype=torch.bool),
                            sorted_ids[..., 1:] != sorted_ids[..., :-1]], dim=-1) & (sorted_ids >= 0)
        coords = torch.arange(resolution, device=screen.device, dtype=torch.float32) + 0.5
        py, px = torch.meshgrid(coords, coords, indexing="ij")
        pixels = torch.stack([px, py], dim=-1)[None, :, :, None].expand(batch, -1, -1, 9, -1)
        batch_index = torch.arange(batch, device=screen.device).view(-1, 1, 1, 1, 1)
        tri = screen[batch_index, faces[sorted_ids.clamp(min=0)]]  # [B,H,W,9,3,2]
        edges = _edge_functions(pixels, tri)  # [B,H,W,9,3]
        area = edges.sum(-1, keepdim=True)
        orient = torch.where(area >= 0, 1.0, -1.0)
        lengths = torch.stack([(tri[..., (i + 2) % 3, :] - tri[..., (i + 1) % 3, :]).norm(dim=-1) for i in range(3)], -1)
        inward = (edges * orient) / lengths.clamp(min=1e-6)  # signed pixel distance to each edge, + inside
        distance = inward.min(dim=-1).values  # > 0 inside the triangle
        coverage = (0.5 + distance / (2 * self.sigma)).clamp(0, 1) * unique  # box filter of a straight edge
        # Summed, not multiplied: across a shared interior edge the two triangles' coverages add to 1
        # (no dip); at the silhouette one triangle gives 0.5 +- d, continuous as the pixel centre
        # crosses the edge, so the image is continuous in the vertex positions.
        alpha = coverage.sum(-1, keepdim=True).clamp(max=1.0)
        # Only silhouettes are soft. The sum dips below 1 inside the surface wherever a neighbouring
        # triangle owns no pixel centre (triangles of a pixel or less) or near a vertex shared by many
        # triangles, which speckled the background into every mesh render. A pixel whose 3x3
        # neighbourhood is all covered is at least half a pixel from any silhouette: it is opaque.
        interior = (neighbours >= 0).all(-1, keepdim=True)
        alpha = torch.where(interior, torch.ones_like(alpha), alpha)
        nearest = sorted_ids.gather(-1, coverage.detach().argmax(-1, keepdim=True))[..., 0]
        nearest = torch.where(coverage.detach().max(-1).values > 1e-4, nearest, torch.full_like(nearest, -1))
        return alpha, torch.where(face_id >= 0, face_id, nearest)

    def __call__(self, vertices, faces, attributes, cameras, resolution, shade: Callable, background) -> RasterOutput:
        clip = to_clip(vertices, cameras)
        screen, w = _screen(clip, resolution)
        face_id = self._visible_faces(screen.detach(), w.detach(), faces, resolution)
        alpha, attribute_face = self._soft_coverage(screen, w, faces, face_id, resolution)
        bary, corners = self._barycentrics(screen, w, faces, attribute_face, resolution, clamp=True)
        values = attributes[corners]  # [B,H,W,3,C]
        interpolated = (bary[..., None] * values).sum(-2)
        has_face = (attribute_face >= 0)[..., None]
        alpha = alpha * has_face
        colour = shade(interpolated, has_face)
        rgb = alpha * colour + (1 - alpha) * background
        return RasterOutput(rgb, alpha, interpolated, face_id)


class NvdiffrastRasterizer:
    """nvdiffrast with a CUDA context (no OpenGL/EGL, so it works headless on cluster nodes)."""

    def __init__(self):
        import nvdiffrast.torch as dr

        self.dr = dr
        self.context = dr.RasterizeCudaContext()

    def __call__(self, vertices, faces, attributes, cameras, resolution, shade: Callable, background) -> RasterOutput:
        if not vertices.is_cuda:  # nvdiffrast takes CUDA tensors only (e.g. evaluation on the CPU)
            return TorchRasterizer()(vertices, faces, attributes, cameras, resolution, shade, background)
        dr = self.dr
        clip = to_clip(vertices, cameras).contiguous()
        tri = faces.int().contiguous()
        rast, _ = dr.rasterize(self.context, clip, tri, (resolution, resolution))
        interpolated, _ = dr.interpolate(attributes[None].contiguous().float(), rast, tri)
        mask = (rast[..., 3:4] > 0).float()
        colour = shade(interpolated, mask.bool())
        rgb = dr.antialias(mask * colour + (1 - mask) * background, rast, clip, tri)
        alpha = dr.antialias(mask, rast, clip, tri)
        flip = lambda x: torch.flip(x, dims=[1])  # nvdiffrast's row 0 is the bottom  # noqa: E731
        face_id = rast[..., 3].long() - 1
        return RasterOutput(flip(rgb), flip(alpha), flip(interpolated), flip(face_id))


def make_rasterizer(backend: str = "auto"):
    """nvdiffrast when CUDA and the module are available (or requested), else the torch rasteriser."""
    if backend == "torch":
        return TorchRasterizer()
    if nvdiffrast_available():
        return NvdiffrastRasterizer()
    if backend == "nvdiffrast" or torch.cuda.is_available():
        warnings.warn("nvdiffrast is not importable; using the pure-PyTorch rasteriser. Install it with: "
                      "bash scripts/install_gpu_extensions.sh (see environment.yml)", stacklevel=2)
    return TorchRasterizer()
