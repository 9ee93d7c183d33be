"""The tiny open_clip model trained contrastively on toy-world renders (trained by the lab:
`dreamflow-lab train-toy-clip`).

It is an ordinary open_clip model config (`dreamflow-toy-clip.json`) and checkpoint, loaded by the
same `open_clip.create_model_and_transforms(name, pretrained=...)` call that loads ViT-L-14 on a
cluster, so CLIP score and R-precision are real numbers on the toy suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The toy suite's CLIP: the evaluation's default everywhere (workflow schema, `dreamflow evaluate`, tests).
TOY_CLIP_MODEL = "dreamflow-toy-clip"
TOY_CLIP_WEIGHTS = "models/toy-clip/open_clip_model.safetensors"
MODEL_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def register_model_config(folder: str | Path) -> None:
    """Make `dreamflow-toy-clip` known to open_clip (a no-op for built-in names)."""
    import open_clip

    path = Path(folder) / f"{TOY_CLIP_MODEL}.json"
    if path.exists():
        open_clip.add_model_config(path)


def load_clip(model_name: str, pretrained: str, device: str | torch.device = "cpu"):
    """(model, preprocess, tokenizer) through open_clip; toy or real weights alike."""
    import open_clip

    if model_name == TOY_CLIP_MODEL:
        register_model_config(Path(pretrained).parent)
    if pretrained and Path(pretrained).suffix and not Path(pretrained).exists():
        raise FileNotFoundError(f"CLIP checkpoint '{pretrained}' does not exist; run `dreamflow-lab train-toy-clip` "
                                "or set evaluate.clip_pretrained")
    weights = None if pretrained in ("", "none") else pretrained  # "none": random weights (rehearsals)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)
