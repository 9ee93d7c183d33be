"""Where does the base prior put a pattern it draws? Phase agreement of img2img draws.

    python lab/experiments/pattern_phase/run.py [--stage stage2|stage3] [--strength T] [--seeds 4] [--out FILE]

Stage 2 renders the mesh at 64 px and the base prior's guidance, at t <= 0.5, pulls each view
towards what the prior would draw from it. For the pattern to build up on the texture, the draws
of different views (and of different noise at the same view) must put the stripes, checks or dots
at the same place on the object. This measures that directly, in 2D, without any 3D model: the
true scene from 8 held-out views at 64 px, either as it is or blurred to what stage 1 produces
(Gaussian blur, sigma = 1/16 of the image: the pattern's two colours averaged), is noised to `strength`
and denoised by the base prior (DDIM img2img, 20 steps, CFG 5, the prompt with each camera's view
suffix as in the prior's training captions).
Per draw, inside the true silhouette (eroded), with high-pass images as `toy_metrics` uses them:

* `pattern`: the phase-blind pattern error against the true render (0 = the true pattern, 1 = none);
* `phase vs truth`: normalised correlation of the draw's high-pass with the truth's (1 = the true
  pattern in place, 0 = unrelated, < 0 = shifted by half a period);
* `phase between draws`: the same correlation between two draws of the same view with different
  noise (the agreement the texture can average into a pattern).

`--stage stage3` asks the same of the refiner at stage 3's resolution (128 px, its t_max 0.3 by
default), from the true render and from the same blur. A first row per prompt passes the true render through the prior's VAE only (encode, decode): the
pattern the latent space holds at all, which bounds what any latent guidance can put on a texture;
a second scores the blurred start itself (about 1: no pattern).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
import torch

from dreamflow.config import PriorConfig, load_config
from dreamflow.evaluate.toy_metrics import (
    erode,
    held_out_cameras,
    high_pass,
    pattern_spectrum_error,
)
from dreamflow.priors.loading import load_prior
from dreamflow.render.cameras import view_direction_suffix
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import parse_toy_prompt

PROMPTS = ("a blue sphere with yellow stripes", "a green cube with purple checks", "a yellow cylinder with blue dots")


def score(prompt: str, start: str, view: int, seed: int, detail: torch.Tensor, true_detail: torch.Tensor,
          window: torch.Tensor, between: float = float("nan")) -> dict:
    """One row: a high-pass image [H,W,C] of one view against the truth's, inside `window` [H,W]."""
    return {"prompt": prompt, "start": start, "view": view, "seed": seed,
            "pattern": pattern_spectrum_error(detail[None], true_detail[None], window[None]),
            "phase vs truth": correlation(detail, true_detail, window), "phase between draws": between}


def correlation(a: torch.Tensor, b: torch.Tensor, window: torch.Tensor) -> float:
    """Normalised correlation of two high-pass images [H,W,C] inside `window` [H,W]."""
    a, b = a[window].flatten(), b[window].flatten()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-12))


@torch.no_grad()
def img2img(pipe, prompts: list[str], images: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """DDIM img2img draws [N,H,W,3] of images [N,H,W,3] in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    out = pipe(prompts, image=images.permute(0, 3, 1, 2), strength=strength, num_inference_steps=20,
               guidance_scale=5.0, generator=generator, output_type="pt").images
    return out.permute(0, 2, 3, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/pipeline/toy.yaml")
    parser.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    parser.add_argument("--stage", choices=["stage2", "stage3"], default="stage2",
                        help="stage2: the base prior at 64 px; stage3: the refiner at 128 px")
    parser.add_argument("--strength", type=float, default=None,
                        help="img2img strength (default: the stage's APFO t_max)")
    parser.add_argument("--seeds", type=int, default=4, help="draws per view")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--faint", nargs="*", type=float, default=[],
                        help="also start from the blur plus this share of the true pattern (e.g. 0.25 0.5)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: needs at least 2 draws per view (their agreement is measured in pairs)")
    config = load_config(args.config)
    stage = getattr(config, args.stage)
    resolution, strength = stage.resolution, args.strength or config.guidance_for(stage).apfo.t_max
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    prior = config.prior if args.stage == "stage2" else config.refiner_prior
    pipe = load_prior(PriorConfig(pretrained=prior.pretrained), "cpu").pipe
    if args.stage == "stage2":  # the base prior loads as text-to-image; the refiner is img2img already
        pipe = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    cameras = held_out_cameras(config.camera, args.views)
    suffixes = [view_direction_suffix(float(e), float(a)) for e, a in zip(cameras.elevation, cameras.azimuth)]
    sigma = resolution / 64
    rows = []
    for prompt in args.prompts:
        scene = parse_toy_prompt(prompt)
        truth = render_scene(scene, cameras, resolution)
        window = erode(truth["mask"][..., 0] > 0.5, int(3 * sigma + 0.5))
        # Stage 1's look: the pattern's two colours averaged (Gaussian blur of a pattern period or more).
        blurred = truth["rgb"] - high_pass(truth["rgb"], resolution / 16)
        true_detail = high_pass(truth["rgb"], sigma)
        with torch.no_grad():  # what the prior's VAE holds of the pattern at all: no noise, no denoising
            pixels = truth["rgb"].permute(0, 3, 1, 2) * 2 - 1
            decoded = pipe.vae.decode(pipe.vae.encode(pixels).latent_dist.mean).sample
        round_trip = high_pass(((decoded + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), sigma)
        starts = {"true render": truth["rgb"], "stage-1 blur": blurred}
        for share in args.faint:  # does the prior amplify a faint pattern, in place?
            starts[f"{share:.0%} of the pattern"] = blurred + share * (truth["rgb"] - blurred)
        references = {"true render, VAE only": round_trip, "stage-1 blur itself": high_pass(blurred, sigma)}
        references |= {f"{name} itself": high_pass(start, sigma) for name, start in list(starts.items())[2:]}
        for name, images in references.items():
            rows += [score(prompt, name, view, 0, images[view], true_detail[view], window[view])
                     for view in range(args.views)]
        for start_name, start in starts.items():
            prompts = [f"{prompt}, {suffix}" for suffix in suffixes]
            draws = torch.stack([img2img(pipe, prompts, start, strength, seed)
                                 for seed in range(args.seeds)])  # [seeds, views, H, W, 3]
            details = high_pass(draws.flatten(0, 1), sigma).view(*draws.shape)
            for view in range(args.views):
                pairs = [correlation(details[i, view], details[j, view], window[view])
                         for i, j in itertools.combinations(range(args.seeds), 2)]
                rows += [score(prompt, start_name, view, seed, details[seed, view], true_detail[view], window[view],
                               sum(pairs) / len(pairs)) for seed in range(args.seeds)]
    table = pd.DataFrame(rows)
    summary = table.groupby(["prompt", "start"], sort=False)[["pattern", "phase vs truth", "phase between draws"]]
    text = summary.mean().round(3).reset_index().to_markdown(index=False)
    spread = summary.std().round(3).reset_index().to_markdown(index=False)
    report = (f"`python lab/experiments/pattern_phase/run.py --stage {args.stage} --strength {strength} --seeds {args.seeds} "
              f"--views {args.views}` ({resolution} px)"
              f"\n\nMean over {args.views} views x {args.seeds} draws:\n\n{text}\n\nStandard deviation over the same:"
              f"\n\n{spread}\n")
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
