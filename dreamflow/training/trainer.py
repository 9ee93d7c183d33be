"""The optimisation loop shared by all three stages: one loop, the guidance method is a config value."""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from dreamflow.config import RunConfig, StageConfig, to_dict
from dreamflow.device import make_generator, read_scalars
from dreamflow.geometry.base import StageModel
from dreamflow.guidance import Guidance
from dreamflow.io import load_checkpoint, save_checkpoint
from dreamflow.priors.base import DiffusionPrior
from dreamflow.render.cameras import sample_cameras
from dreamflow.render.volume import SHADING_MODES, box_downsample, choose_shading
from dreamflow.stages import Stage
from dreamflow.training.logger import RunLogger

NAN_INJECTION_ENV = "DREAMFLOW_INJECT_NAN_AT_STEP"  # fault injection for the NaN-guard tests
FAULT_ENV = "DREAMFLOW_FAULT"  # "[stage:]point:step", e.g. "step:4", "stage2:export:3": SIGKILL there (tests)


def fault_point(point: str, step: int) -> None:
    """Kill this process at `point` ("stageN:step|checkpoint|export") when the fault variable names it.

    The variable may omit the stage ("checkpoint:4" matches every stage's checkpoint at step 4).
    """
    wanted = os.environ.get(FAULT_ENV)
    here = f"{point}:{step}"
    if wanted and wanted in (here, here.partition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)


class NonFiniteError(RuntimeError):
    """The loss or the parameters became NaN/Inf; the last good checkpoint was kept."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class Preempted(RuntimeError):
    """SIGTERM/SIGUSR1 arrived (SLURM preemption, requeue or time limit): a checkpoint was written."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # SLURM: scancel/requeue/preemption; --signal=B:USR1@T


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic kernels (warn where none exists)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # The same switch as use_deterministic_algorithms(True, warn_only=True) without its import of
        # torch._inductor's config (1-3 s per job; nothing here is compiled).
        torch.set_deterministic_debug_mode("warn")


@dataclass
class StageResult:
    steps: int
    seconds: float
    resumed_from: int
    checkpoint: Path


class StageTrainer:
    """Optimise `model` with `guidance` for one stage, checkpointing atomically and resuming."""

    def __init__(self, spec: Stage, model: StageModel, prior: DiffusionPrior, guidance: Guidance,
                 config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger, seed: int, callback=None):
        self.spec = spec
        self.stage = spec.name
        self.stage_config: StageConfig = spec.stage_config(config)
        self.model = model
        self.prior = prior
        self.guidance = guidance
        self.config = config
        self.prompt = prompt
        self.out_dir = Path(out_dir)
        self.logger = logger
        self.seed = seed
        # Host draws (the shading mode, a decision made on the host) and device draws (cameras, ray
        # jitter, occupancy): on the CPU one generator, so CPU runs draw exactly as they always did.
        self.generator = torch.Generator().manual_seed(seed)
        device = torch.device(prior.device_)
        self.device_generator = self.generator if device.type == "cpu" else make_generator(device, seed)
        # First step whose loss was not finite (-1: none), kept on the device and read with the metrics.
        self.first_nonfinite = torch.full((), -1, dtype=torch.long, device=device)
        groups = model.param_groups(self.stage_config)
        if self.stage_config.optimizer == "sgd":  # the update's own scale reaches the parameters
            self.optimizer = torch.optim.SGD(groups, lr=self.stage_config.learning_rate)
        else:  # Adam normalises the update's scale away (a constant step_scale cancels exactly)
            self.optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
        # Periodic checkpoints go to resume/ckpt.pt, which is not a Snakemake output: Snakemake deletes
        # a failed job's outputs, and the resume state must survive exactly that. The declared output
        # ckpt.pt is written once, at the end.
        self.checkpoint_path = self.out_dir / "resume" / "ckpt.pt"
        self.final_path = self.out_dir / "ckpt.pt"
        self.shading = spec.shading_config(config)
        self.callback = callback  # callback(step_done, model, seconds) before the first and after each step
        self.step = 0
        self.train_seconds = 0.0  # optimisation time, callbacks excluded, carried over a resume
        self.stop_signal: int | None = None

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"stage": self.stage, "step": self.step, "prompt": self.prompt, "seed": self.seed,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "guidance": self.guidance.state_dict(), "generator": self.generator.get_state(),
                "device_generator": self.device_generator.get_state(),
                "torch_rng": torch.get_rng_state(), "config": to_dict(self.config), "backend": self.model.backend(),
                "train_seconds": self.train_seconds,
                "callback": self.callback.state_dict() if hasattr(self.callback, "state_dict") else None}

    def save(self) -> None:
        save_checkpoint(self.state(), self.checkpoint_path,
                        before_rename=lambda: fault_point(f"{self.stage}:checkpoint", self.step))

    def try_resume(self) -> int:
        if not self.checkpoint_path.exists():
            return 0
        state = load_checkpoint(self.checkpoint_path)
        if state.get("stage") != self.stage or state.get("prompt") != self.prompt or state.get("config") != to_dict(self.config):
            warnings.warn(f"{self.checkpoint_path} was written by a different prompt or config; starting {self.stage} "
                          "from scratch", stacklevel=2)
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.guidance.load_state_dict(state["guidance"])
        self.generator.set_state(state["generator"])
        if "device_generator" in state and self.device_generator is not self.generator:
            self.device_generator.set_state(state["device_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if state.get("callback") is not None and hasattr(self.callback, "load_state_dict"):
            self.callback.load_state_dict(state["callback"])
        self.step = int(state["step"])
        return self.step

    # -- the loop ---------------------------------------------------------------------------------
    def inject_fault(self, loss: torch.Tensor) -> torch.Tensor:
        """The NaN-guard tests' fault: a NaN loss at the step (and prompt) the variable names."""
        injected = os.environ.get(NAN_INJECTION_ENV)  # "STEP" or "STEP@PROMPT" (only that prompt)
        if injected:
            step, _, prompt = injected.partition("@")
            if int(step) == self.step and prompt in ("", self.prompt):
                return loss * float("nan")
        return loss

    def read_checked(self, metrics: dict) -> dict[str, float]:
        """The step's metrics as floats, in one host read together with the NaN guard's flags.

        Called when logging and before every checkpoint, so the per-step loop never waits for the
        device; a non-finite loss recorded at any step since, or non-finite parameters, stop the
        stage with that step named and the last good checkpoint kept.
        """
        finite = torch.stack([torch.isfinite(p).all() for group in self.optimizer.param_groups
                              for p in group["params"]]).all()
        values = read_scalars({**metrics, "_first_nonfinite": self.first_nonfinite, "_parameters_finite": finite})
        first, parameters_finite = int(values.pop("_first_nonfinite")), bool(values.pop("_parameters_finite"))
        if first >= 0 or not parameters_finite:
            step = first if first >= 0 else self.step
            last = step - step % self.stage_config.checkpoint_every
            raise NonFiniteError(
                f"{self.stage}: non-finite loss or parameters at step {step} for prompt {self.prompt!r}; "
                f"stopped. The last good checkpoint ({self.checkpoint_path}, step {last if self.checkpoint_path.exists() else 'none'}) "
                f"is kept. Lower the learning rate or guidance scale, or set guidance.{self.config.guidance.method}.grad_clip.", step)
        return values

    def train_step(self) -> dict[str, float | torch.Tensor]:
        """One optimisation step; its metrics stay device scalars until `read_checked`."""
        c = self.stage_config
        device = self.prior.device_
        info = self.model.before_step(self.step, self.device_generator)
        cameras = sample_cameras(self.config.camera, c.batch_size, self.device_generator, device)
        shading = choose_shading(self.shading, self.step, self.generator, c.shading_start_step)
        output = self.model.render(cameras, c.resolution * c.supersample, shading, self.device_generator)
        output = box_downsample(output, c.supersample)
        images = output.rgb.permute(0, 3, 1, 2)
        latents = self.prior.encode_images(images, self.device_generator)  # a seeded posterior draw
        text = self.prior.text_embeddings(self.prompt, cameras)
        guided = self.guidance(latents, text, cameras.conditioning(), self.step)
        regularisers = self.model.regularisers(c, output)
        loss = self.inject_fault(guided.loss + sum(regularisers.values(), torch.zeros((), device=latents.device)))
        self.first_nonfinite = torch.where(torch.isfinite(loss.detach()) | (self.first_nonfinite >= 0),
                                           self.first_nonfinite, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "loss_guidance": guided.loss.detach(), **guided.info, **info,
                **{f"loss_{k}": v.detach() for k, v in regularisers.items()},
                "opacity": output.opacity.detach().mean(), "shading": SHADING_MODES.index(shading)}

    def finish(self) -> None:
        """Call once the stage's exports are written: until then a killed job resumes from the last step."""
        self.checkpoint_path.unlink(missing_ok=True)
        # Temp files of checkpoint writes killed before their rename (SIGKILL skips the cleanup).
        for stale in self.checkpoint_path.parent.glob(f".{self.checkpoint_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only if empty: never remove anything else kept there
            self.checkpoint_path.parent.rmdir()

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """Turn SIGTERM/SIGUSR1 into a flag checked between steps (the handler itself does no work)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def request_stop(signum, frame):
            self.stop_signal = signum

        for sig in STOP_SIGNALS:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_if_signalled(self, metrics: dict) -> None:
        if self.stop_signal is None:
            return
        self.read_checked(metrics)  # never checkpoint non-finite parameters
        self.save()
        name = signal.Signals(self.stop_signal).name
        self.logger.event("stopped", self.step, signal=name, checkpoint=str(self.checkpoint_path))
        raise Preempted(f"{self.stage}: {name} received; checkpoint written at step {self.step} "
                        f"({self.checkpoint_path}); rerun to resume", self.stop_signal)

    def run(self) -> StageResult:
        resumed = self.try_resume()
        if resumed:
            self.logger.event("resumed", resumed, checkpoint=str(self.checkpoint_path))
        iterations = self.stage_config.iterations
        start_time = time.time()
        progress = tqdm(range(resumed, iterations), initial=resumed, total=iterations,
                        desc=f"{self.stage} {self.guidance.name} {self.prompt[:40]!r}",
                        disable=os.environ.get("DREAMFLOW_NO_PROGRESS") == "1")
        if self.callback is not None and resumed == 0:
            self.callback(0, self.model, 0.0)  # the untrained model (quality curves score it)
        with self._stop_on_signals():
            for self.step in progress:
                begin = time.perf_counter()
                fault_point(f"{self.stage}:step", self.step)
                metrics = self.train_step()
                done = self.step + 1
                log_now = done % self.stage_config.log_every == 0 or done == iterations
                save_now = done % self.stage_config.checkpoint_every == 0 or done == iterations
                if log_now or save_now:
                    values = self.read_checked(metrics)  # the only host read of these steps
                    if log_now:
                        values["seconds"] = self.train_seconds + time.perf_counter() - begin
                        self.logger.log(values, done)
                        progress.set_postfix(loss=f"{values['loss']:.3g}", t=f"{values.get('t', math.nan):.2f}")
                self.step = done
                self.train_seconds += time.perf_counter() - begin
                if self.callback is not None:
                    self.callback(done, self.model, self.train_seconds)
                if save_now:
                    self.save()
                self._stop_if_signalled(metrics)
        if resumed >= iterations:
            self.step = iterations
        save_checkpoint(self.state(), self.final_path)
        return StageResult(iterations - resumed, time.time() - start_time, resumed, self.final_path)


def build_trainer(spec: Stage, config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger,
                  make_model: Callable[[], StageModel], callback=None) -> StageTrainer:
    """Seed, build the model, then the stage's prior and guidance, and the trainer around them.

    The model is built first, right after seeding: attaching the LoRA source model (APFO, VSD)
    draws from the torch RNG, and every method must start from the same initialisation.
    """
    from dreamflow.guidance import make_guidance
    from dreamflow.priors import load_prior
    from dreamflow.priors.loading import resolve_device

    seed_everything(config.seed, config.deterministic)
    device = resolve_device(config.device)
    model = make_model().to(device)
    prior = load_prior(spec.prior_config(config), device)
    guidance = make_guidance(prior, spec.guidance_config(config), spec.stage_config(config).iterations, config.seed)
    return StageTrainer(spec, model, prior, guidance, config, prompt, out_dir, logger, config.seed, callback)
