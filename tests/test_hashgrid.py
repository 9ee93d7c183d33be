import dataclasses
import math

import pytest
import torch

from dreamflow.config import HashGridConfig
from dreamflow.geometry.hashgrid import HashGridEncoding, level_layout, tcnn_available

CONFIG = HashGridConfig(n_levels=6, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4,
                        finest_resolution=128, backend="torch")


def reference_encoding(encoding: HashGridEncoding, x: torch.Tensor) -> torch.Tensor:
    """Point-by-point, corner-by-corner transcription of tinycudann's grid encoding (slow, obvious)."""
    primes = (1, 2654435761, 805459861)
    table = encoding.params.detach().view(-1, encoding.config.n_features_per_level)
    out = torch.zeros(x.shape[0], encoding.n_output_dims, dtype=torch.float64)
    for n, point in enumerate(x.tolist()):
        for level, (scale, res, size, offset) in enumerate(zip(encoding.scales, encoding.resolutions,
                                                              encoding.sizes, encoding.offsets)):
            pos = [p * scale + 0.5 for p in point]
            base = [math.floor(p) for p in pos]
            frac = [p - b for p, b in zip(pos, base)]
            for corner in range(8):
                bits = [(corner >> d) & 1 for d in range(3)]
                c = [b + bit for b, bit in zip(base, bits)]
                weight = 1.0
                for d in range(3):
                    weight *= frac[d] if bits[d] else 1 - frac[d]
                if res ** 3 <= size:
                    index = c[0] + c[1] * res + c[2] * res * res
                else:
                    index = ((c[0] * primes[0]) ^ (c[1] * primes[1]) ^ (c[2] * primes[2])) & 0xFFFFFFFF
                index = index % size + offset
                f = encoding.config.n_features_per_level
                out[n, level * f:(level + 1) * f] += weight * table[index].double()
    return out


def test_torch_hash_grid_matches_reference():
    torch.manual_seed(0)
    encoding = HashGridEncoding(CONFIG)
    encoding.params.data.uniform_(-1, 1)
    x = torch.rand(40, 3)
    x[0] = 0.0
    x[1] = 1.0
    assert torch.allclose(encoding(x).double(), reference_encoding(encoding, x), atol=1e-5)


def test_layout_is_tinycudann_style():
    scales, resolutions, sizes, offsets = level_layout(CONFIG)
    assert all(size % 8 == 0 for size in sizes)
    assert sizes[0] == math.ceil((resolutions[0] ** 3) / 8) * 8  # coarse level: dense
    assert sizes[-1] == 2 ** CONFIG.log2_hashmap_size  # fine level: hashed
    assert offsets[1] == sizes[0]
    assert resolutions[0] == math.ceil(CONFIG.base_resolution - 1) + 1


def test_gradients_reach_the_table():
    encoding = HashGridEncoding(CONFIG)
    encoding(torch.rand(100, 3)).square().sum().backward()
    assert encoding.params.grad.abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not tcnn_available(), reason="tinycudann parity needs CUDA and the tinycudann module")
def test_tcnn_parity():
    config = HashGridConfig(n_levels=8, log2_hashmap_size=14, base_resolution=16, finest_resolution=512, backend="auto")
    encoding = HashGridEncoding(config).cuda()
    encoding.params.data.uniform_(-1, 1)
    x = torch.rand(4096, 3, device="cuda")
    assert encoding.backend == "tcnn"
    weights = torch.randn(4096, encoding.n_output_dims, device="cuda")
    tcnn_out = encoding(x)
    (tcnn_out * weights).sum().backward()
    tcnn_grad, encoding.params.grad = encoding.params.grad.clone(), None
    torch_out = encoding.forward_torch(x)
    (torch_out * weights).sum().backward()  # the torch path's backward on the GPU (index_add_)
    assert torch.allclose(tcnn_out, torch_out, atol=1e-3)
    assert torch.allclose(tcnn_grad, encoding.params.grad, atol=1e-3, rtol=1e-3)


def autograd_encoding(encoding: HashGridEncoding, x: torch.Tensor) -> torch.Tensor:
    """Per-level int64 gather with autograd's own backward: the gradient reference for `_TableLookup`."""
    primes = (1, 2654435761, 805459861)
    features = encoding.config.n_features_per_level
    table = encoding.params.view(-1, features)
    corners = torch.tensor([[(i >> d) & 1 for d in range(3)] for i in range(8)])
    outputs = []
    for scale, res, size, offset in zip(encoding.scales, encoding.resolutions, encoding.sizes, encoding.offsets):
        position = x * scale + 0.5
        floor = position.floor()
        fraction = position - floor
        c = floor.long()[:, None, :] + corners[None]
        if res ** 3 <= size:
            index = c[..., 0] + c[..., 1] * res + c[..., 2] * res * res
        else:
            index = ((c[..., 0] * primes[0]) ^ (c[..., 1] * primes[1]) ^ (c[..., 2] * primes[2])) & 0xFFFFFFFF
        index = index % size + offset
        weights = torch.where(corners[None].bool(), fraction[:, None, :], 1 - fraction[:, None, :]).prod(-1)
        outputs.append((weights[..., None] * table[index]).sum(1))
    return torch.cat(outputs, dim=-1)


def test_fast_backward_matches_autograd_for_table_and_points():
    torch.manual_seed(1)
    encoding = HashGridEncoding(CONFIG)
    encoding.params.data.uniform_(-1, 1)
    x = torch.rand(500, 3, requires_grad=True)
    upstream = torch.randn(500, encoding.n_output_dims)
    (encoding(x) * upstream).sum().backward()
    fast_table, fast_points = encoding.params.grad.clone(), x.grad.clone()
    encoding.params.grad, x.grad = None, None
    (autograd_encoding(encoding, x) * upstream).sum().backward()
    assert fast_table.abs().sum() > 0 and fast_points.abs().sum() > 0
    assert torch.allclose(fast_table, encoding.params.grad, atol=1e-5)
    assert torch.allclose(fast_points, x.grad, atol=1e-4)


def test_nerf_normals_point_out_of_the_initial_density_blob():
    """The fresh field is the radial density blob, whose outward normal is the radial direction."""
    from dreamflow.config import NeRFConfig
    from dreamflow.geometry.nerf import NeRFField

    torch.manual_seed(0)
    field = NeRFField(NeRFConfig())
    points = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1) * torch.rand(200, 1).clamp(0.1, 0.45)
    cosine = (field.normals(points) * torch.nn.functional.normalize(points, dim=-1)).sum(-1)
    assert cosine.min() > 0.98


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    """nerf.encoding.compile: a torch.compile that fails (no compiler, unsupported op) warns once and the
    encoding keeps working eagerly with the same values."""
    def broken_compile(function, **kwargs):
        def compiled(*args, **kw):
            raise RuntimeError("no C++ compiler")
        return compiled

    x = torch.rand(64, 3)
    eager = HashGridEncoding(CONFIG)
    monkeypatch.setattr(torch, "compile", broken_compile)
    guarded = HashGridEncoding(dataclasses.replace(CONFIG, compile=True))
    guarded.load_state_dict(eager.state_dict())
    with pytest.warns(UserWarning, match="torch.compile of the hash grid's corners failed"):
        first = guarded(x)
    assert torch.equal(first, eager(x)) and torch.equal(guarded(x), first)
