"""CLIP R-precision by DreamFusion's protocol: does a render of the asset retrieve its own caption?

DreamFusion (Poole et al., ICLR 2023, §4 and Table 1) follows Dream Fields (Jain et al., CVPR 2022):
it generates the 153 object-centric COCO captions of Dream Fields and reports R@1, the share of
assets whose render retrieves its own caption among all 153, with CLIP ViT-B/32, B/16 and L/14, on
colour renders and on textureless renders (the geometry shaded with a white albedo, "Geo").
Dream Fields' released evaluation (google-research/google-research `dreamfields/dreamfields/lib.py`,
`run_eval` and `render_from_checkpoint`) fixes what the papers leave implicit, and we follow it:

* **one view per asset**, Dream Fields' validation view `pose_spherical(30, -45, 4)`: azimuth 30°,
  45° above the equator (`RetrievalProtocol.azimuth`, `.elevation`); no averaging over views. The
  camera is the protocol's own, not the run config's evaluation camera: Dream Fields stands 4 away
  from its [-1, 1]³ scene at fovy 39.6° (focal 1111.1 px at 800 px), so we stand 4 of the scene's
  bounding radii away (`nerf.radius`; `RetrievalProtocol.distance_in_radii`) at fovy 39.6°
  (`.fovy`): the bounding sphere fills about 3/4 of the frame's height, whole. (The paper configs'
  evaluation camera, 1.5 at 40°, frames ±0.55 around a radius-1 scene and cuts objects off.)
* a white background, the render at the final stage's resolution, resized by each CLIP model's own
  preprocessing (Dream Fields renders at the model's 224 px directly);
* per model, the cosine similarity of the image embedding with every caption's; a **hit** is Dream
  Fields' rule, `argmax(cosine_sim) == idx_true`: the caption retrieved first (the first index among
  equally similar ones) is the asset's own, so a tie with an earlier caption is a miss; R@1 is the mean
  of the hits over the assets. The asset's **rank**, 1 + the number of captions strictly more similar
  than its own, is kept for information: rank 1 with a tie can still be a miss.

The retrieval set is a caption file (`evaluate.captions`; DreamFusion: the 153 Dream Fields
captions) together with the suite's own prompts, so every asset of a suite faces the same set and
always contains its caption (Dream Fields adds an asset's own query when the file lacks it). Captions
are compared as CLIP's tokenizer reads them, lower-cased with whitespace collapsed (`caption_key`):
"A red cube" and "a red cube" embed identically, so the set holds each once and an asset's own
caption exactly once. Without a caption file it is the suite's own prompts, which means something only
for a large suite (with 3 prompts, chance is 33 %): the report says which. Fewer than 2 captions is
an error: R@1 would be 100 % by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from PIL import Image

from dreamflow.config import ConfigError
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


def caption_key(caption: str) -> str:
    """A caption as CLIP's tokenizer reads it: lower-cased, whitespace collapsed (equal keys embed identically)."""
    return " ".join(caption.split()).lower()


def _unique(captions: list[str], seen: set[str]) -> list[str]:
    """`captions` without those whose key is in `seen` or repeats an earlier one (the first spelling kept)."""
    kept = []
    for caption in captions:
        if caption_key(caption) not in seen:
            seen.add(caption_key(caption))
            kept.append(caption)
    return kept


def caption_set(suite_prompts: list[str], caption_file: str | None) -> CaptionSet:
    """The retrieval set: `caption_file`'s captions and the suite prompts it lacks (in that order), each
    caption once (`caption_key`). Fewer than 2 captions: a ConfigError (R@1 would be 100 % by construction)."""
    seen: set[str] = set()
    if caption_file is None:
        chosen = CaptionSet(_unique(list(suite_prompts), seen), None, 0, len(suite_prompts))
    else:
        captions = _unique(read_prompts(caption_file), seen)
        extra = _unique(list(suite_prompts), seen)
        chosen = CaptionSet(captions + extra, str(caption_file), len(captions), len(suite_prompts), extra)
    if len(chosen.captions) < 2:
        raise ConfigError(
            f"R-precision among {len(chosen.captions)} caption(s) {chosen.captions} would be 100 % by construction: "
            "give the suite's prompt file (`dreamflow evaluate --suite-prompts FILE`) or a caption file to retrieve "
            "among (`--captions FILE`, `evaluate.captions`; DreamFusion: Dream Fields' 153 COCO captions)")
    return chosen


def caption_index(captions: list[str], prompt: str) -> int:
    """The index of `prompt` in `captions`, compared by `caption_key`."""
    keys = [caption_key(caption) for caption in captions]
    if caption_key(prompt) not in keys:
        raise ValueError(f"the prompt {prompt!r} is not among the {len(captions)} captions retrieved among")
    return keys.index(caption_key(prompt))


def retrieval_view(protocol: RetrievalProtocol, scene_radius: float) -> Cameras:
    """The one view R-precision renders: the protocol's angles, `distance_in_radii` x `scene_radius`
    away, at its fovy (Dream Fields': 30°, 45° up, 4 radii, 39.6°)."""
    one = lambda value: torch.tensor([float(value)])  # noqa: E731
    return cameras_from_spherical(one(protocol.elevation), one(protocol.azimuth),
                                  one(protocol.distance(scene_radius)), one(protocol.fovy))


def rank_of(similarities: torch.Tensor, true_index: int) -> int:
    """1 + the number of captions strictly more similar than the true one (for information: a tie
    leaves rank 1, but the hit is `is_hit`'s)."""
    return int((similarities > similarities[true_index]).sum()) + 1


def is_hit(similarities: torch.Tensor, true_index: int) -> bool:
    """Dream Fields' hit, `argmax(cosine_sim) == idx_true`: the first of equally similar captions wins."""
    return int(similarities.argmax()) == true_index


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
def render_modes(model: StageModel, scene_radius: float, resolution: int, protocol: RetrievalProtocol) -> dict:
    """mode -> the protocol view's render [1, H, W, 3] in that mode, for a scene of bounding radius
    `scene_radius` (the run config's `nerf.radius`)."""
    view = retrieval_view(protocol, scene_radius).to(model.device)
    return {mode: model.render_views(view, resolution, RENDER_MODES[mode]).rgb for mode in protocol.modes}


@torch.no_grad()
def score_retrieval(renders: dict[str, torch.Tensor], prompt: str, captions: list[str],
                    clips: dict[ClipModel, tuple]) -> list[dict]:
    """Per CLIP model and render mode: the true caption's rank, the hit (`is_hit`), its CLIP score
    (100 x cosine) and the caption retrieved first (the hit's caption exactly when it is a hit)."""
    true_index = caption_index(captions, prompt)
    results = []
    for clip_model, clip in clips.items():
        modes = list(renders)
        similarities = clip_similarities_with(clip, torch.cat([renders[m] for m in modes]), captions)
        for mode, row in zip(modes, similarities):
            results.append({"model": clip_model.model, "pretrained": clip_model.pretrained, "clip": clip_model.name,
                            "mode": mode, "rank": rank_of(row, true_index), "hit": int(is_hit(row, true_index)),
                            "clip_score": 100 * float(row[true_index]), "retrieved": captions[int(row.argmax())]})
    return results
