"""Differentiable mesh rasterisation: nvdiffrast (CUDA context) or a pure-PyTorch rasteriser.

Both back ends take world-space vertices, faces, per-vertex attributes and cameras, and return
the shaded image composited over the background, a coverage/alpha map and triangle ids with the
same shapes and image convention (row 0 at the top, as the volume renderer). Shading (the texture
field, the costly part at high resolution) runs on the covered pixels only: `shade(attributes
[N, C], batch_index [N]) -> [N, K]` gets their interpolated attributes, and its K channels (RGB, or
several RGB images side by side) are composited over the background. Vertex positions get gradients through
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

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dreamflow.device import (LaggedCapacity, compact_indices, cuda_extension_available, spare_to_first,
                              use_cuda_extension)
from dreamflow.render.cameras import Cameras, mvp_matrix


@dataclass
class RasterOutput:
    rgb: torch.Tensor  # [B, H, W, K] shade's channels composited over the background (K = 3: an image)
    alpha: torch.Tensor  # [B, H, W, 1] coverage in [0, 1]
    face_id: torch.Tensor  # [B, H, W] triangle index, -1 for background


Shade = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (attributes [N,C], batch index [N]) -> [N,K]


def composite(values: torch.Tensor, pixel: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Scatter covered pixels' shaded `values` [N, K] (flat indices `pixel`; spare slots B*H*W are
    dropped) into images and blend them over `background` [3] (repeated for every RGB triple of K)
    with `alpha` [B, H, W, 1]."""
    batch, height, width, _ = alpha.shape
    channels, pixels = values.shape[-1], batch * height * width
    image = values.new_zeros(pixels + 1, channels).index_put((pixel,), values)[:pixels]
    image = image.view(batch, height, width, channels)
    return alpha * image + (1 - alpha) * background.to(image.dtype).repeat(channels // 3)


def nvdiffrast_available() -> bool:
    """nvdiffrast can run here (CUDA visible, the module imports; any import error counts as no)."""
    return cuda_extension_available("nvdiffrast.torch")


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
    """Brute-force z-buffer over face chunks (no grad), then differentiable barycentrics and soft edges.

    Its data-dependent selections (large faces and their pixels, the silhouette band, the covered
    pixels) are compacted into buffers sized by `LaggedCapacity`: exact on the CPU, and on CUDA
    from earlier calls' counts, so that a render never waits for the device.
    """

    def __init__(self, sigma: float = 0.5, max_elements: int = 1 << 22):
        self.sigma = sigma  # half-width of the soft edge in pixels (0.5: one pixel box filter)
        self.max_elements = max_elements
        self.large_buffer = LaggedCapacity("torch rasteriser, large faces and their box pixels")
        self.band_buffer = LaggedCapacity("torch rasteriser, silhouette band")
        self.covered_buffer = LaggedCapacity("torch rasteriser, covered pixels")

    @torch.no_grad()
    def visible_faces(self, screen: torch.Tensor, w: torch.Tensor, faces: torch.Tensor, resolution: int) -> torch.Tensor:
        """Nearest triangle per pixel: each face tests only the pixel centres of its bounding box.

        Faces whose box fits in `small` x `small` pixels (most faces at any resolution) are tested
        against that tile with fixed shapes. The others' boxes are enumerated pixel by pixel (a
        ragged list, in chunks of buffers whose sizes cover their count and total area). Each hit is
        a key (depth's float bits << 32 | face), min-reduced per pixel, so the depth test and the
        face choice are one scatter.
        """
        batch, small = screen.shape[0], 4
        pixels_per_image = resolution * resolution
        device = screen.device
        tri = screen[:, faces]  # [B, F, 3, 2]
        tri_w = w[:, faces]  # [B, F, 3]
        lo = (tri.min(dim=2).values - 0.5).ceil().clamp(0, resolution - 1)
        hi = (tri.max(dim=2).values - 0.5).floor().clamp(-1, resolution - 1)
        extent = (hi - lo + 1).clamp(min=0)
        valid = (extent > 0).all(-1) & (tri_w > 1e-6).all(-1)
        tiny = valid & (extent <= small).all(-1)
        empty = torch.iinfo(torch.int64).max
        keys = torch.full((batch * pixels_per_image + 1,), empty, dtype=torch.int64, device=device)  # +1: misses
        face_ids = torch.arange(faces.shape[0], device=device)
        batch_ids = torch.arange(batch, device=device)[:, None]
        axis = torch.arange(small, device=device)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).view(-1, 2).float()  # [small^2, 2]
        chunk = max(1, self.max_elements // (batch * grid.shape[0]))
        for start in range(0, faces.shape[0], chunk):
            part = slice(start, start + chunk)
            pixel = lo[:, part, None, :] + grid  # [B, f, small^2, 2]
            hit = tiny[:, part, None] & (grid < extent[:, part, None, :]).all(-1)
            self._reduce_hits(keys, pixel, tri[:, part], tri_w[:, part], hit, batch_ids, face_ids[part], resolution)
        rest = valid & ~tiny
        area = (extent[..., 0] * extent[..., 1]).long() * rest
        face_count = faces.shape[0]
        count, total = self.large_buffer.sizes(torch.stack([rest.sum(), area.sum()]),
                                               [rest.numel(), rest.numel() * pixels_per_image],
                                               key=(batch, face_count, resolution))
        if count:
            # Spare slots (index B*F) own no pixel (area 0); pairs past the true total area are masked.
            flat = compact_indices(rest, count)
            areas = torch.cat([area.reshape(-1), area.new_zeros(1)])[flat]
            flat = flat.clamp(max=rest.numel() - 1)
            b_index, f_index = torch.div(flat, face_count, rounding_mode="floor"), flat % face_count
            ends = areas.cumsum(0)
            width = extent[b_index, f_index, 0].long().clamp(min=1)
            for start in range(0, total, self.max_elements):
                pair = torch.arange(start, min(start + self.max_elements, total), device=device)
                owner = torch.searchsorted(ends, pair, right=True)  # the face whose box holds this pair
                inside = owner < count
                owner = owner.clamp(max=count - 1)
                local = pair - (ends[owner] - areas[owner])
                row = torch.div(local, width[owner], rounding_mode="floor")
                offset = torch.stack([local - row * width[owner], row], dim=-1).float()
                pixel = (lo[b_index[owner], f_index[owner]] + offset)[None, :, None, :]  # [1, n, 1, 2]
                self._reduce_hits(keys, pixel, tri[b_index[owner], f_index[owner]][None],
                                  tri_w[b_index[owner], f_index[owner]][None], inside[None, :, None],
                                  b_index[owner][None], f_index[owner], resolution)
        keys = keys[:-1]
        best_face = torch.where(keys == empty, -1, keys & 0xFFFFFFFF)
        return best_face.view(batch, resolution, resolution)

    @staticmethod
    def _reduce_hits(keys, pixel, tri, tri_w, mask, batch_index, face_index, resolution) -> None:
        """Inside test and perspective-correct depth of (face, pixel-centre) pairs [B', f, K]; each hit's
        (depth, face) key is min-reduced into `keys` at its pixel, misses into the last slot."""
        centres = pixel + 0.5
        edges = _edge_functions(centres, tri[:, :, None])  # [B', f, K, 3]
        area = edges.sum(-1)
        inside = ((edges >= 0).all(-1) | (edges <= 0).all(-1)) & (area.abs() > 1e-12)
        if mask is not None:
            inside &= mask
        bary = edges / torch.where(area.abs() > 1e-12, area, torch.ones_like(area))[..., None]
        depth = 1.0 / (bary / tri_w[:, :, None]).sum(-1).clamp(min=1e-8)  # > 0: its float bits sort as it does
        flat = (batch_index[..., None] * resolution * resolution + pixel[..., 1].long() * resolution
                + pixel[..., 0].long())
        flat = torch.where(inside, flat, keys.shape[0] - 1)
        key = (depth.float().view(torch.int32).long() << 32) | face_index.view(1, -1, 1)
        keys.scatter_reduce_(0, flat.reshape(-1), key.reshape(-1), reduce="amin")

    @staticmethod
    def pixel_centres(pixel: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch index [N] and pixel-centre coordinates [N, 2] (x right, y down) of flat pixel indices."""
        per_image = resolution * resolution
        batch_index = torch.div(pixel, per_image, rounding_mode="floor")
        rest = pixel - batch_index * per_image
        row = torch.div(rest, resolution, rounding_mode="floor")
        column = rest - row * resolution
        return batch_index, torch.stack([column, row], dim=-1).float() + 0.5

    def barycentrics(self, screen, w, faces, pixel, face, resolution, clamp: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Perspective-correct barycentrics [N, 3] of pixel centres (flat indices `pixel`) in triangles
        `face` (differentiable), and the triangles' corner vertices [N, 3]."""
        batch_index, centres = self.pixel_centres(pixel, resolution)
        corner_index = faces[face]  # [N, 3]
        tri = screen[batch_index[:, None], corner_index]  # [N, 3, 2]
        tri_w = w[batch_index[:, None], corner_index]  # [N, 3]
        edges = _edge_functions(centres, tri)
        area = edges.sum(-1, keepdim=True)
        area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
        bary = edges / area
        if clamp:
            bary = bary.clamp(min=0)
            bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-8)
        perspective = bary / tri_w
        return perspective / perspective.sum(-1, keepdim=True).clamp(min=1e-12), corner_index

    def _soft_coverage(self, screen, w, faces, face_id, resolution) -> tuple[torch.Tensor, torch.Tensor]:
        """Alpha from the 3x3 neighbourhood's triangles, and the nearest triangle for every pixel.

        Only the silhouette band needs it (pixels with both triangles and background in their 3x3
        neighbourhood, compacted into a buffer): pixels whose neighbourhood is all covered are opaque,
        those with no triangle near are background.
        """
        batch = face_id.shape[0]
        padded = F.pad(face_id.float()[:, None], (1, 1, 1, 1), value=-1)
        neighbours = F.unfold(padded, 3).view(batch, 9, resolution, resolution).permute(0, 2, 3, 1).long()
        has_face = neighbours >= 0
        interior = has_face.all(-1)
        in_band = has_face.any(-1) & ~interior
        pixels = in_band.numel()
        size, = self.band_buffer.sizes(in_band.sum().reshape(1), [pixels], key=pixels)
        band_slot = compact_indices(in_band, size)  # spare slots: `pixels`, scattered to a dropped slot
        band = spare_to_first(band_slot, pixels)
        sorted_ids, _ = neighbours.reshape(-1, 9).index_select(0, band).sort(dim=-1)  # [N, 9]
        unique = torch.cat([torch.ones_like(sorted_ids[:, :1], dtype=torch.bool),
                            sorted_ids[:, 1:] != sorted_ids[:, :-1]], dim=-1) & (sorted_ids >= 0)
        batch_index, centres = self.pixel_centres(band, resolution)
        tri = screen[batch_index[:, None, None], faces[sorted_ids.clamp(min=0)]]  # [N, 9, 3, 2]
        edges = _edge_functions(centres[:, None], tri)  # [N, 9, 3]
        area = edges.sum(-1, keepdim=True)
        orient = torch.where(area >= 0, 1.0, -1.0)
        lengths = torch.stack([(tri[..., (i + 2) % 3, :] - tri[..., (i + 1) % 3, :]).norm(dim=-1) for i in range(3)], -1)
        inward = (edges * orient) / lengths.clamp(min=1e-6)  # signed pixel distance to each edge, + inside
        distance = inward.min(dim=-1).values  # > 0 inside the triangle
        coverage = (0.5 + distance / (2 * self.sigma)).clamp(0, 1) * unique  # box filter of a straight edge
        # Summed, not multiplied: across a shared interior edge the two triangles' coverages add to 1
        # (no dip); at the silhouette one triangle gives 0.5 +- d, continuous as the pixel centre
        # crosses the edge, so the image is continuous in the vertex positions.
        band_alpha = coverage.sum(-1).clamp(max=1.0)
        # Only silhouettes are soft. The sum dips below 1 inside the surface wherever a neighbouring
        # triangle owns no pixel centre (triangles of a pixel or less) or near a vertex shared by many
        # triangles, which speckled the background into every mesh render. A pixel whose 3x3
        # neighbourhood is all covered is at least half a pixel from any silhouette: it is opaque.
        alpha = F.pad(interior.reshape(-1).to(screen.dtype), (0, 1)).index_put((band_slot,), band_alpha)[:pixels]
        alpha = alpha.view(batch, resolution, resolution, 1)
        nearest = sorted_ids.gather(-1, coverage.detach().argmax(-1, keepdim=True))[:, 0]
        nearest = torch.where(coverage.detach().max(-1).values > 1e-4, nearest, torch.full_like(nearest, -1))
        nearest = face_id.new_full((pixels + 1,), -1).index_put((band_slot,), nearest)[:pixels].view_as(face_id)
        return alpha, torch.where(face_id >= 0, face_id, nearest)

    def __call__(self, vertices, faces, attributes, cameras, resolution, shade: Shade, background) -> RasterOutput:
        clip = to_clip(vertices, cameras)
        screen, w = _screen(clip, resolution)
        face_id = self.visible_faces(screen.detach(), w.detach(), faces, resolution)
        alpha, attribute_face = self._soft_coverage(screen, w, faces, face_id, resolution)
        covered = attribute_face >= 0
        pixels = covered.numel()
        size, = self.covered_buffer.sizes(covered.sum().reshape(1), [pixels], key=pixels)
        slot = compact_indices(covered, size)  # the shaded pixels; spare slots are dropped by `composite`
        pixel = spare_to_first(slot, pixels)
        bary, corners = self.barycentrics(screen, w, faces, pixel, attribute_face.reshape(-1)[pixel].clamp(min=0),
                                          resolution, clamp=True)
        interpolated = (bary[..., None] * attributes[corners]).sum(-2)  # [N, C]
        values = shade(interpolated, torch.div(pixel, resolution * resolution, rounding_mode="floor"))
        alpha = alpha * covered[..., None]
        return RasterOutput(composite(values, slot, alpha, background), alpha, face_id)


class NvdiffrastRasterizer:
    """nvdiffrast with a CUDA context (no OpenGL/EGL, so it works headless on cluster nodes)."""

    def __init__(self):
        import nvdiffrast.torch as dr

        self.dr = dr
        self.context = dr.RasterizeCudaContext()
        self.covered_buffer = LaggedCapacity("nvdiffrast rasteriser, covered pixels")

    def __call__(self, vertices, faces, attributes, cameras, resolution, shade: Shade, background) -> RasterOutput:
        if not vertices.is_cuda:  # nvdiffrast takes CUDA tensors only (e.g. evaluation on the CPU)
            return TorchRasterizer()(vertices, faces, attributes, cameras, resolution, shade, background)
        dr = self.dr
        clip = to_clip(vertices, cameras).contiguous()
        tri = faces.int().contiguous()
        rast, _ = dr.rasterize(self.context, clip, tri, (resolution, resolution))
        interpolated, _ = dr.interpolate(attributes[None].contiguous().float(), rast, tri)
        mask = (rast[..., 3:4] > 0).float()
        covered = rast[..., 3] > 0  # shade covered pixels only, compacted without a host read
        pixels = covered.numel()
        size, = self.covered_buffer.sizes(covered.sum().reshape(1), [pixels], key=pixels)
        slot = compact_indices(covered, size)
        pixel = spare_to_first(slot, pixels)
        values = shade(interpolated.reshape(-1, interpolated.shape[-1]).index_select(0, pixel),
                       torch.div(pixel, resolution * resolution, rounding_mode="floor"))
        image = dr.antialias(composite(values, slot, mask, background).contiguous(), rast, clip, tri)
        alpha = dr.antialias(mask, rast, clip, tri)
        flip = lambda x: torch.flip(x, dims=[1])  # nvdiffrast's row 0 is the bottom  # noqa: E731
        face_id = rast[..., 3].long() - 1
        return RasterOutput(flip(image), flip(alpha), flip(face_id))


def make_rasterizer(backend: str = "auto"):
    """nvdiffrast when CUDA and the module are available (or requested), else the torch rasteriser."""
    if use_cuda_extension("nvdiffrast.torch", backend, "nvdiffrast", "the pure-PyTorch rasteriser"):
        return NvdiffrastRasterizer()
    return TorchRasterizer()
