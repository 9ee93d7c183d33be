"""CLIP R-precision by DreamFusion's protocol: does a render of the asset retrieve its own caption?

DreamFusion (Poole et al., ICLR 2023, §4 and Table 1) follows Dream Fields (Jain et al., CVPR 2022):
it generates the 153 object-centric COCO captions of Dream Fields and reports R@1, the share of
assets whose render retrieves its own caption among all 153, with CLIP ViT-B/32, B/16 and L/14, on
colour renders and on textureless renders (the geometry shaded with a white albedo, "Geo").
Dream Fields' released evaluation (google-research/google-research `dreamfields/dreamfields/lib.py`,
`run_eval` and `render_from_checkpoint`) fixes what the papers leave implicit, and we follow it:

* **one view per asset**, Dream Fields' validation view `pose_spherical(30, -45, 4)`: azimuth 30°,
  45° above the equator (`RetrievalProtocol.azimuth`, `.elevation`); no averaging over views. The
  camera's distance and field of view are the run config's evaluation camera (`camera.eval_distance`,
  `camera.eval_fovy`), which frame our scenes as Dream Fields' radius 4 and 39.6° frame its [-1, 1]³ box;
* a white background, the render at the final stage's resolution, resized by each CLIP model's own
  preprocessing (Dream Fields renders at the model's 224 px directly);
* per model, the cosine similarity of the image embedding with every caption's; the asset's **rank**
  is 1 + the number of captions more similar than its own, a **hit** is rank 1 (Dream Fields:
  `argmax(cosine_sim) == idx_true`), and R@1 is the mean of the hits over the assets.

The retrieval set is a caption file (`evaluate.captions`; DreamFusion: the 153 Dream Fields
captions) together with the suite's own prompts, so every asset of a suite faces the same set and
always contains its caption (Dream Fields adds an asset's own query when the file lacks it). Without
a caption file it is the suite's own prompts, which means something only for a large suite (with 3
prompts, chance is 33 %): the report says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from PIL import Image

from dreamflow.config import CameraConfig
from dreamflow.evaluate.protocol import RENDER_MODES, ClipModel, RetrievalProtocol
from dreamflow.prompts import read_prompts
from dreamflow.render.cameras import Cameras, cameras_from_spherical

if TYPE_CHECKING:
    from dreamflow.geometry.base import StageModel


@dataclass(frozen=True)
class CaptionSet:
    """The retrieval set of a suite: the caption file's captions, then the suite prompts it lacks."""

    captions: list[str]
    source: str | None  # the caption file, or None: the suite's own prompts
    from_file: int = 0
    suite_prompts: int = 0
    extra: list[str] = field(default_factory=list)  # suite prompts not in the caption file

    def describe(self) -> str:
        """One line for reports: which captions an asset's render is ranked among."""
        if self.source is None:
            return f"retrieval among the suite's own {len(self.captions)} prompts"
        added = f" + {len(self.extra)} suite prompt(s) it lacks" if self.extra else ""
        return f"retrieval among {len(self.captions)} captions: {self.source} ({self.from_file}){added}"

    def as_dict(self) -> dict:
        return {"source": self.source, "count": len(self.captions), "from_file": self.from_file,
                "suite_prompts": self.suite_prompts, "added_suite_prompts": len(self.extra)}


def caption_set(suite_prompts: list[str], caption_file: str | None) -> CaptionSet:
    """The retrieval set: `caption_file`'s captions and the suite prompts it lacks (in that order)."""
    if caption_file is None:
        return CaptionSet(list(suite_prompts), None, 0, len(suite_prompts))
    captions = read_prompts(caption_file)
    extra = [prompt for prompt in suite_prompts if prompt not in set(captions)]
    return CaptionSet(captions + extra, str(caption_file), len(captions), len(suite_prompts), extra)


def retrieval_view(camera: CameraConfig, elevation: float, azimuth: float) -> Cameras:
    """The one view R-precision renders: Dream Fields' angles at the run config's evaluation distance and fovy."""
    one = lambda value: torch.tensor([float(value)])  # noqa: E731
    return cameras_from_spherical(one(elevation), one(azimuth), one(camera.eval_distance), one(camera.eval_fovy))


def rank_of(similarities: torch.Tensor, true_index: int) -> int:
    """1 + the number of captions strictly more similar than the true one (ties count in its favour)."""
    return int((similarities > similarities[true_index]).sum()) + 1


@torch.no_grad()
def clip_similarities_with(clip: tuple, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Cosine similarity [images, prompts] of renders [B,H,W,3] in [0, 1] with prompts, for a loaded
    (model, preprocess, tokenizer) (`dreamflow.evaluate.toy_clip.load_clip`)."""
    model, preprocess, tokenizer = clip
    pixels = (images.clamp(0, 1) * 255).round().byte().cpu().numpy()
    batch = torch.stack([preprocess(Image.fromarray(p)) for p in pixels])
    image_features = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
    text_features = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)), dim=-1)
    return image_features @ text_features.T


@torch.no_grad()
def render_modes(model: StageModel, camera: CameraConfig, resolution: int, protocol: RetrievalProtocol) -> dict:
    """mode -> the protocol view's render [1, H, W, 3] in that mode."""
    view = retrieval_view(camera, protocol.elevation, protocol.azimuth).to(model.device)
    return {mode: model.render_views(view, resolution, RENDER_MODES[mode]).rgb for mode in protocol.modes}


@torch.no_grad()
def score_retrieval(renders: dict[str, torch.Tensor], prompt: str, captions: list[str],
                    clips: dict[ClipModel, tuple]) -> list[dict]:
    """Per CLIP model and render mode: the true caption's rank, the hit (rank 1), its CLIP score
    (100 x cosine) and the caption retrieved first."""
    true_index = captions.index(prompt)
    results = []
    for clip_model, clip in clips.items():
        modes = list(renders)
        similarities = clip_similarities_with(clip, torch.cat([renders[m] for m in modes]), captions)
        for mode, row in zip(modes, similarities):
            rank = rank_of(row, true_index)
            results.append({"model": clip_model.model, "pretrained": clip_model.pretrained, "clip": clip_model.name,
                            "mode": mode, "rank": rank, "hit": int(rank == 1),
                            "clip_score": 100 * float(row[true_index]), "retrieved": captions[int(row.argmax())]})
    return results
