"""Train the tiny open_clip model the toy suite is scored with (`dreamflow-lab train-toy-clip`).

It is an ordinary open_clip model config (`dreamflow-toy-clip.json`) and checkpoint, loaded by the
same `open_clip.create_model_and_transforms(name, pretrained=...)` call that loads ViT-L-14 on a
cluster, so CLIP score and R-precision are real numbers on the toy suite.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dreamflow.config import CameraConfig
from dreamflow.evaluate.toy_clip import MODEL_CONFIG, TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS


@dataclass
class ToyCLIPTrainingConfig:
    output_dir: str = str(Path(TOY_CLIP_WEIGHTS).parent)  # the evaluation loads it from there
    dataset_cache: str = "models/.cache"  # shared with `train-toy-prior`: the world is rendered once
    seed: int = 0
    views_plain: int = 32  # the same views as the priors' dataset (see ToyPriorTrainingConfig)
    views_pattern: int = 6
    views_composition: int = 4
    steps: int = 1500
    scenes_per_batch: int = 64  # distinct captions per contrastive batch
    learning_rate: float = 1e-3
    low_resolutions: tuple[int, ...] = (24, 32, 48, 64, 64, 64)  # renders of 3D assets are blurrier than the data
    camera: CameraConfig = field(default_factory=CameraConfig)


def train_toy_clip(config: ToyCLIPTrainingConfig) -> Path:
    import open_clip
    from safetensors.torch import save_file

    from dreamflow_lab.toy_models.dataset import cached_dataset, world_views

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOY_CLIP_MODEL}.json").write_text(json.dumps(MODEL_CONFIG, indent=2))
    open_clip.add_model_config(out / f"{TOY_CLIP_MODEL}.json")
    model, _, preprocess = open_clip.create_model_and_transforms(TOY_CLIP_MODEL)
    tokenizer = open_clip.get_tokenizer(TOY_CLIP_MODEL)
    start = time.time()
    scene_views = world_views(config.views_plain, config.views_pattern, config.views_composition)
    dataset = cached_dataset(config.dataset_cache, config.camera, scene_views, (32, 64, 128), config.seed)
    scenes = dataset.scenes
    tokens = tokenizer([scene.prompt for scene in scenes])
    mean = torch.tensor(preprocess.transforms[-1].mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.transforms[-1].std).view(1, 3, 1, 1)
    by_scene = [torch.nonzero(dataset.scene_index == i)[:, 0] for i in range(len(scenes))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.steps)
    for step in tqdm(range(config.steps), desc="train toy clip"):
        # One view of each of `scenes_per_batch` scenes: every caption in the batch is distinct.
        chosen = torch.randperm(len(scenes), generator=generator)[:config.scenes_per_batch]
        picks = torch.stack([by_scene[i][torch.randint(len(by_scene[i]), (1,), generator=generator)]
                             for i in chosen.tolist()])[:, 0]
        images = dataset.images[64][picks].float() / 255
        low = config.low_resolutions[int(torch.randint(len(config.low_resolutions), (1,), generator=generator))]
        images = F.interpolate(F.interpolate(images, size=low, mode="area"), size=64, mode="bilinear", align_corners=False)
        image_features = F.normalize(model.encode_image((images - mean) / std), dim=-1)
        text_features = F.normalize(model.encode_text(tokens[chosen]), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        labels = torch.arange(len(chosen))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    path = out / Path(TOY_CLIP_WEIGHTS).name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    (out / "README.md").write_text(
        f"# {TOY_CLIP_MODEL}\n\nTiny open_clip model (config `{TOY_CLIP_MODEL}.json`) trained contrastively on "
        f"toy-world v2 renders ({len(dataset)} views of {len(scenes)} scenes, {config.scenes_per_batch} scenes "
        f"per batch, random blur to "
        f"{list(config.low_resolutions)} px), {config.steps} steps in {time.time() - start:.0f} s on a 2-core CPU.\n"
        f"Final batch loss {loss.item():.3f}. Retrain: `dreamflow-lab train-toy-clip`.\n\n```json\n"
        f"{json.dumps(asdict(config), indent=2, default=str)}\n```\n")
    return path
