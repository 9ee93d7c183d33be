"""Grade the toy priors' samples with the judge and write this folder's README.md and its images.

    python lab/experiments/prior_samples/run.py [--models models] [--out lab/experiments/prior_samples]

* base prior: DDIM text-to-image samples at 32 px (stage 1) and 64 px (stage 2);
* refiner: img2img at 128 px (stage 3) of the base prior's 64-px samples, upsampled (the
  coarse-to-fine chain), and of true renders blurred to 32 px (detail that is not there at all).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imageio.v3 as iio
import torch
import torch.nn.functional as F

from dreamflow.config import PriorConfig
from dreamflow.priors import load_prior
from dreamflow_lab.judge import judged_scenes
from dreamflow_lab.samples import front_renders, grade, grid, refine, sample_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="models")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--strength", type=float, default=0.5, help="refiner img2img strength")
    args = parser.parse_args()
    out = Path(args.out)
    scenes = judged_scenes()
    base = load_prior(PriorConfig(pretrained=f"{args.models}/toy-sd21"), "cpu").pipe
    refiner = load_prior(PriorConfig(pretrained=f"{args.models}/toy-sdxl-refiner"), "cpu").pipe
    results, pictures = {}, {}
    start = time.time()
    truth = front_renders(scenes, 128)
    results["true renders, 64 px (the judge's own error)"] = grade(F.interpolate(
        truth.permute(0, 3, 1, 2), size=64, mode="area").permute(0, 2, 3, 1), scenes)
    results["true renders, 128 px (the judge's own error)"] = grade(truth, scenes)
    with torch.no_grad():  # what the refiner's VAE can hold at all: encode and decode the truth
        pixels = truth.permute(0, 3, 1, 2) * 2 - 1
        decoded = refiner.vae.decode(refiner.vae.encode(pixels).latent_dist.mean).sample
    results["true renders through the refiner's VAE, 128 px"] = grade(
        ((decoded + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), scenes)
    for resolution in (32, 64):
        samples = sample_base(base, scenes, resolution)
        results[f"base prior, {resolution} px"] = grade(samples, scenes)
        pictures[f"base{resolution}"] = samples
    chain = refine(refiner, scenes, pictures["base64"], 128, strength=args.strength)
    results[f"refiner on base 64-px samples, 128 px (strength {args.strength})"] = grade(chain, scenes)
    blurred = F.interpolate(truth.permute(0, 3, 1, 2), size=32, mode="area").permute(0, 2, 3, 1)
    from_blur = refine(refiner, scenes, blurred, 128, strength=args.strength)
    results[f"refiner on true renders blurred to 32 px, 128 px (strength {args.strength})"] = grade(from_blur, scenes)
    seconds = time.time() - start
    columns = 12
    shown = list(range(0, 30, 3)) + list(range(30, len(scenes)))  # a third of the plain ones, all others
    pick = lambda images: images[shown]
    for name, images in {"base64": pictures["base64"], "refined128": chain}.items():
        path = out / f"toyworld_samples_{name}.png"
        iio.imwrite(path, (grid(pick(images), columns, 128).clamp(0, 1) * 255).round().byte().numpy())
    lines = ["# Toy world v2: what the trained priors draw", "",
             "Graded by `lab/dreamflow_lab/judge.py`, which compares against true renders and never uses a",
             f"prior. {len(scenes)} prompts (`judged_scenes()`): the 30 plain scenes, 30 patterned ones (every",
             "shape x pattern, two colour pairs each) and 7 stacked pairs; \", front view\" appended.",
             "Colour is over all prompts; shape and pattern over the 60 single-object ones (stacked scenes",
             "are graded on their two colours being in the right order).", "",
             "| images | colour | shape | pattern |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['colour']:.2f} | {r['shape']:.2f} | {r['pattern']:.2f} |" for name, r in results.items()]
    lines += ["", f"Sampling and grading took {seconds:.0f} s. Regenerate: `python lab/experiments/prior_samples/run.py`.", "",
              "Base prior, 64 px (every third plain prompt, then patterned, then stacked; row by row):", "",
              "![base samples](toyworld_samples_base64.png)", "",
              "The same samples refined at 128 px by the SDXL-refiner-format prior:", "",
              "![refined samples](toyworld_samples_refined128.png)", "",
              "Prompts, in order: " + "; ".join(scenes[i].prompt for i in shown) + "."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
