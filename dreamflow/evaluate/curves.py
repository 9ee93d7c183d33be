"""Quality curves: a stage scores its model on fixed held-out views every N iterations.

On toy-world prompts the scores are the ground-truth ones (silhouette IoU, colour error, pattern
error, Chamfer distance on mesh stages); on any prompt, the CLIP score when a CLIP model is given.
The recorder is the trainer's step callback; its rows travel inside the stage's resume checkpoint,
so a stage killed mid-run resumes with the rows it had and recomputes only those after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from dreamflow.config import RunConfig, StageConfig
from dreamflow.evaluate.toy_metrics import chamfer_distance, held_out_cameras, image_metrics, render_like_truth
from dreamflow.toyworld.scenes import parse_toy_prompt

CURVE_FILE = "curve.csv"


@dataclass(frozen=True)
class CurveSettings:
    """How often and on what a stage is scored (`every` 0: no curve)."""

    every: int = 0
    views: int = 8
    clip_model: str | None = None
    clip_pretrained: str | None = None


class CurveRecorder:
    """Trainer callback: scores the model at step 0, every `every` steps and at the last step.

    `seconds` in each row is the trainer's training time: the recorder's own time is excluded, and
    training time carries over a resume.
    """

    def __init__(self, settings: CurveSettings, config: RunConfig, prompt: str, stage: StageConfig):
        if settings.every < 1:
            raise ValueError(f"curve evaluation interval must be >= 1 iteration, got {settings.every}")
        # Scored at the stage's own render size; the last step is always scored.
        self.settings, self.resolution, self.iterations = settings, stage.resolution, stage.iterations
        self.scene = parse_toy_prompt(prompt)
        self.prompt = prompt
        self.cameras = held_out_cameras(config.camera, settings.views)
        self.clip = None
        if settings.clip_model and settings.clip_pretrained:
            from dreamflow.evaluate.toy_clip import load_clip

            self.clip = load_clip(settings.clip_model, settings.clip_pretrained)
        if self.scene is None and self.clip is None:
            raise ValueError(f"prompt {prompt!r} is not a toy-world prompt, so its curve needs a CLIP model: "
                             "set the suite's curves.clip_model / curves.clip_pretrained")
        self.rows: list[dict] = []

    def state_dict(self) -> dict:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))

    def __call__(self, step: int, model, seconds: float) -> None:
        if step % self.settings.every and step != self.iterations:
            return
        self.rows = [row for row in self.rows if row["step"] < step]  # rows past a resumed checkpoint
        self.rows.append({"step": step, "seconds": seconds, **self.score(model)})

    @torch.no_grad()
    def score(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        # Sampled as the truth is: the pattern error compares spectra up to the pixel frequency.
        output = render_like_truth(model, self.cameras.to(model.device), self.resolution)
        metrics: dict[str, float] = {}
        if self.scene is not None:
            metrics |= image_metrics(self.scene, self.cameras, output.opacity, output.albedo, self.resolution)
            surface = model.to_trimesh()
            if surface is not None:
                metrics |= chamfer_distance(surface, self.scene, count=5000)
        if self.clip is not None:
            from dreamflow.evaluate.metrics import clip_similarities_with

            metrics["clip_score"] = float(100 * clip_similarities_with(self.clip, output.rgb, [self.prompt]).mean())
        model.train(was_training)
        return metrics

    def write(self, out_dir: str | Path, identity: dict) -> Path:
        """`curve.csv` in `out_dir`: identity columns (method, variant, prompt, seed, stage), then the rows."""
        path = Path(out_dir) / CURVE_FILE
        frame = pd.DataFrame(self.rows)
        for position, (key, value) in enumerate(identity.items()):
            frame.insert(position, key, value)
        frame.to_csv(path, index=False)
        return path

