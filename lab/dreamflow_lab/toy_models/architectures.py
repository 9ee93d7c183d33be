"""Tiny configurations of the SD 2.x and SDXL-refiner component classes (diffusers/transformers)."""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

TEXT_HIDDEN = 64
REFINER_TIME_EMBED_DIM = 8
REFINER_TIME_IDS = 5  # original size (2) + crop top-left (2) + aesthetic score (1), as the SDXL refiner


def toy_scheduler() -> DDIMScheduler:
    """Stable Diffusion 2.1's noise schedule (scaled-linear betas, 1000 steps, epsilon)."""
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="epsilon")


def toy_text_config(vocab_size: int, layers: int) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN,
                          num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=32,
                          projection_dim=TEXT_HIDDEN, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                          pad_token_id=vocab_size - 1, hidden_act="gelu")


def toy_text_encoder(vocab_size: int) -> CLIPTextModel:
    return CLIPTextModel(toy_text_config(vocab_size, layers=2))


def toy_text_encoder_2(vocab_size: int) -> CLIPTextModelWithProjection:
    # SDXL takes the penultimate hidden state, so one layer more than the base encoder.
    return CLIPTextModelWithProjection(toy_text_config(vocab_size, layers=3))


def toy_vae(downsampling_blocks: int) -> AutoencoderKL:
    """AutoencoderKL with 2**downsampling_blocks spatial reduction and 4 latent channels."""
    channels = (16, 32, 32)[: downsampling_blocks + 1]
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * len(channels),
                         up_block_types=("UpDecoderBlock2D",) * len(channels),
                         block_out_channels=channels, norm_num_groups=8, sample_size=64)


def toy_unet(sample_size: int, refiner: bool = False) -> UNet2DConditionModel:
    """A three-level UNet2DConditionModel, SD 2.x style (linear projections).

    Attention only on the two coarser levels: on this CPU full-resolution self-attention
    costs 4x the whole step (measured: 0.23 s vs 0.9 s per batch-32 step at 16x16 latents).
    """
    extra = {}
    if refiner:
        extra = dict(addition_embed_type="text_time", addition_time_embed_dim=REFINER_TIME_EMBED_DIM,
                     projection_class_embeddings_input_dim=TEXT_HIDDEN + REFINER_TIME_IDS * REFINER_TIME_EMBED_DIM)
    return UNet2DConditionModel(sample_size=sample_size, in_channels=4, out_channels=4,
                                block_out_channels=(32, 64, 64), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=TEXT_HIDDEN, attention_head_dim=8,
                                norm_num_groups=16, use_linear_projection=True, **extra)
