"""Full-size SD 2.1 and SDXL-refiner networks from their published configs, with random weights.

For speed and memory measurements on a GPU (`dreamflow perf`) and shape tests without downloading
weights. The configs are the ones in the model repositories' `*/config.json`
(stabilityai/stable-diffusion-2-1-base, -2-1 and stable-diffusion-xl-refiner-1.0). The tokenizer is
the toy one: token ids only need to be valid.
"""

from __future__ import annotations

from pathlib import Path

SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    use_linear_projection=True, norm_num_groups=32,
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
SD21_TEXT = dict(  # OpenCLIP ViT-H/14 text tower, penultimate layer (23 of 24 layers kept)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
)
SDXL_REFINER_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(384, 768, 1536, 1536), attention_head_dim=(6, 12, 24, 24), cross_attention_dim=1280,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=4, use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560, norm_num_groups=32,
)
SDXL_TEXT_2 = dict(  # OpenCLIP ViT-bigG/14 text tower
    vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
)
SD21_UNET_PARAMETERS = 865_910_724  # published count of stabilityai/stable-diffusion-2-1 unet
# SD 2.1 (768, the VSD references' LoRA model): the 2.1-base network at 96x96 latents, trained on v.
SD21_768_UNET = {**SD21_UNET, "sample_size": 96, "upcast_attention": True}


def _toy_tokenizer():
    import tempfile

    from transformers import CLIPTokenizer

    from dreamflow.toyworld.tokenizer import write_tokenizer_files

    return CLIPTokenizer.from_pretrained(write_tokenizer_files(Path(tempfile.mkdtemp()) / "tokenizer", 77))


def _scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)


def is_sd21_768(name: str) -> bool:
    """SD 2.1 at 768 px (v-prediction): `stable-diffusion-2-1` without `-base`."""
    return name.rstrip("/").endswith("stable-diffusion-2-1") or name == "sd21-768"


def build_unet_only(name: str):
    """(UNet, scheduler) of the named model with random weights: a separate source-model UNet."""
    from diffusers import UNet2DConditionModel

    if "refiner" in name.lower() or "xl" in name.lower():
        return UNet2DConditionModel(**SDXL_REFINER_UNET), _scheduler()
    if is_sd21_768(name):
        return UNet2DConditionModel(**SD21_768_UNET), _scheduler("v_prediction")
    return UNet2DConditionModel(**SD21_UNET), _scheduler()


def build_architecture_only(name: str):
    """A pipeline of randomly initialised full-size networks: 'sd21' or 'sdxl-refiner' by name."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    scheduler = _scheduler()
    if "refiner" in name.lower() or "xl" in name.lower():
        return StableDiffusionXLImg2ImgPipeline(
            vae=AutoencoderKL(**{**SD_VAE, "scaling_factor": 0.13025}), text_encoder=None,
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2)), tokenizer=None,
            tokenizer_2=_toy_tokenizer(), unet=UNet2DConditionModel(**SDXL_REFINER_UNET), scheduler=scheduler,
            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    return StableDiffusionPipeline(
        vae=AutoencoderKL(**SD_VAE), text_encoder=CLIPTextModel(CLIPTextConfig(**SD21_TEXT)),
        tokenizer=_toy_tokenizer(), unet=UNet2DConditionModel(**SD21_UNET), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
