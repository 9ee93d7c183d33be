"""Peak GPU memory per stage at config/paper.yaml's settings, estimated from measurements on a CPU.

    dreamflow perf memory > docs/results/memory.md

What is measured, and how:
* weights: parameter counts of the full-size networks (architecture-only) times their dtype's bytes
  (fp16 UNet and text encoders, fp32 VAE, fp32 LoRA + camera embedding with AdamW states);
* activations kept for backward: the UNet (LoRA training step, fp16) and the VAE encoder (fp32, with
  gradients to the renders) are run on PyTorch's meta device at the paper's sizes, and the bytes of
  every tensor autograd saves are added up (torch.autograd.graph.saved_tensors_hooks). Parameters are
  left out (counted once above), and attention is counted as flash / memory-efficient SDPA keeps it on
  a GPU (q, k, v, output, log-sum-exp), not as the CPU's tokens x tokens probability matrices;
* the pure-PyTorch NeRF (hash grid, MLPs, volume rendering with occupancy skipping) is measured for
  real on the CPU (peak RSS growth of one training render + backward) at 64 px, and scaled by the
  number of rays to 256 px; tinycudann needs less;
* the no-grad UNet calls (CFG batch of 2, the source model) keep no activations: their transient
  peak is below the training step's.
The sum gets 20 % on top for the allocator's fragmentation and CUDA context. An estimate, not a
measurement on a GPU. Measured on an H200 (docs/results/gpu_first_run.md, pure-PyTorch back ends): stage 1
32.4 GB, stage 2 8.1 GB, stage 3 20.0 GB; the stage-3 estimate misses the pure-PyTorch rasteriser's
buffers at 1024 px.
"""

from __future__ import annotations

import argparse
import resource
import sys

import torch

GB = 2 ** 30


class _FlashLikeAttention(torch.autograd.Function):
    """SDPA that saves what flash / memory-efficient attention keep for backward: q, k, v, the output
    and one log-sum-exp per query and head (not the tokens x tokens probabilities the CPU path stores)."""

    @staticmethod
    def forward(ctx, q, k, v):
        with torch.no_grad():
            out = _SDPA(q, k, v)
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):  # never called: the estimate runs forward only
        raise NotImplementedError


_SDPA = torch.nn.functional.scaled_dot_product_attention


def _flash_like_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    if attn_mask is not None or is_causal or scale is not None:
        return _SDPA(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    return _FlashLikeAttention.apply(query, key, value)


def saved_activation_bytes(module: torch.nn.Module, run) -> int:
    """Bytes of tensors autograd saves while `run()` executes `module` (meta device; weights excluded)."""
    params = {id(p) for p in module.parameters()}
    total = [0]

    def pack(tensor):
        base = tensor._base if tensor._base is not None else tensor
        if id(tensor) not in params and id(base) not in params:
            total[0] += tensor.numel() * tensor.element_size()
        return tensor

    torch.nn.functional.scaled_dot_product_attention = _flash_like_sdpa
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            run()
    finally:
        torch.nn.functional.scaled_dot_product_attention = _SDPA
    return total[0]


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def unet_numbers(config: dict, latent: int, text_dim: int, added: dict | None) -> tuple[int, int]:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config).to(torch.float16).requires_grad_(False)
    x = torch.randn(1, 4, latent, latent, device="meta", dtype=torch.float16, requires_grad=True)
    states = torch.randn(1, 77, text_dim, device="meta", dtype=torch.float16)
    kwargs = {"added_cond_kwargs": added} if added else {}
    saved = saved_activation_bytes(unet, lambda: unet(x, torch.tensor([500], device="meta"), states, **kwargs))
    return count_parameters(unet), saved


def vae_encode_numbers(config: dict, size: int, checkpointing: bool) -> tuple[int, int]:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL(**config).requires_grad_(False)
    if checkpointing:
        vae.enable_gradient_checkpointing()
    images = torch.randn(1, 3, size, size, device="meta", requires_grad=True)
    return count_parameters(vae), saved_activation_bytes(vae, lambda: vae.encode(images).latent_dist.mean)


def text_encoder_parameters(config: dict, with_projection: bool) -> int:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
        return count_parameters(cls(CLIPTextConfig(**config)))


def nerf_bytes_at_256() -> tuple[float, float]:
    """Peak RSS growth of one stage-1 training render + backward at 64 px (paper NeRF), scaled to 256 px."""
    from dreamflow.config import load_config
    from dreamflow.geometry.nerf import NeRFModel
    from dreamflow.render.cameras import sample_cameras

    config = load_config("config/paper.yaml", {"nerf.encoding.backend": "torch"})
    model = NeRFModel(config)
    generator = torch.Generator().manual_seed(0)
    model.before_step(0, generator)  # occupancy from the initial density blob
    cameras = sample_cameras(config.camera, 1, generator)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    output = model.render(cameras, 64, "diffuse", generator)
    output.rgb.mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return peak, peak * (256 / 64) ** 2


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0]).parse_args(argv)
    from dreamflow.priors.architecture import SD21_TEXT, SD21_UNET, SD_VAE, SDXL_REFINER_UNET, SDXL_TEXT_2

    nerf_64, nerf_256 = nerf_bytes_at_256()
    sd_params, sd_saved = unet_numbers(SD21_UNET, 64, 1024, None)
    refiner_added = {"text_embeds": torch.randn(1, 1280, device="meta", dtype=torch.float16),
                     "time_ids": torch.randn(1, 5, device="meta", dtype=torch.float16)}
    refiner_params, refiner_saved = unet_numbers(SDXL_REFINER_UNET, 128, 1280, refiner_added)
    vae_params, vae_512 = vae_encode_numbers(SD_VAE, 512, False)
    _, vae_1024 = vae_encode_numbers({**SD_VAE, "scaling_factor": 0.13025}, 1024, False)
    _, vae_1024_ckpt = vae_encode_numbers({**SD_VAE, "scaling_factor": 0.13025}, 1024, True)
    sd_text = text_encoder_parameters(SD21_TEXT, False)
    refiner_text = text_encoder_parameters(SDXL_TEXT_2, True)
    rows = []
    mesh_extra = 0.5 * GB  # textured mesh (100k faces) + pure-torch rasteriser buffers at 512-1024 px (measured
    # 0.05-0.15 s and < 0.5 GB at 256 px for 5k faces; an upper allowance)
    for stage, unet, saved, text, vae_saved, geometry in [
            ("stage 1 (NeRF 256 px, SD 2.1, VAE at 512)", sd_params, sd_saved, sd_text, vae_512, nerf_256),
            ("stage 2 (mesh 512 px, SD 2.1)", sd_params, sd_saved, sd_text, vae_512, mesh_extra),
            ("stage 3 (mesh 1024 px, SDXL refiner, VAE checkpointed)", refiner_params, refiner_saved, refiner_text,
             vae_1024_ckpt, mesh_extra),
            ("stage 3 without VAE checkpointing", refiner_params, refiner_saved, refiner_text, vae_1024, mesh_extra)]:
        weights = 2 * unet + 2 * text + 4 * vae_params + 0.1 * GB  # + LoRA, camera embedding, AdamW states
        total = 1.2 * (weights + saved + vae_saved + geometry)
        rows.append((stage, weights / GB, saved / GB, vae_saved / GB, geometry / GB, total / GB))
    print("# Peak GPU memory per stage at config/paper.yaml settings (estimate)\n")
    print("\n".join(__doc__.split("\n\n", 2)[2].splitlines()))
    print(f"\nMeasured: SD 2.1 UNet {sd_params / 1e6:.0f} M parameters, SDXL refiner UNet {refiner_params / 1e6:.0f} M, "
          f"VAE {vae_params / 1e6:.0f} M, text encoders {sd_text / 1e6:.0f} M / {refiner_text / 1e6:.0f} M; "
          f"pure-PyTorch NeRF render + backward at 64 px: {nerf_64 / GB:.2f} GB peak RSS growth.\n")
    print("| stage | weights (GB) | UNet activations (GB) | VAE encoder activations (GB) | NeRF / mesh (GB) | "
          "total with 20 % (GB) |")
    print("|---|---|---|---|---|---|")
    for stage, *values in rows:
        print(f"| {stage} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
