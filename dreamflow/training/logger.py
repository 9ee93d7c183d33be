"""Run logging: always a local JSON-lines file; Weights & Biases offline by default, never blocking."""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"\b([0-9a-f]{40}|hf_[A-Za-z0-9]{20,}|local-[0-9a-f]{40})\b")


def redact(value: Any) -> Any:
    """Remove anything that looks like a secret from a (nested) config before logging it."""
    if isinstance(value, dict):
        return {k: "<redacted>" if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return SECRET_VALUE.sub("<redacted>", value)
    return value


@dataclass
class WandbSettings:
    mode: str = "offline"  # offline | online | disabled
    project: str = "dreamflow"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    name: str | None = None
    dir: str | None = None


class RunLogger:
    """Metrics to `log.jsonl` in the stage folder, mirrored to a W&B run when enabled."""

    def __init__(self, out_dir: str | Path, settings: WandbSettings | None = None, config: dict | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "log.jsonl"
        self.settings = settings or WandbSettings(mode="disabled")
        self.run = None
        if self.settings.mode != "disabled":
            self.run = self._init_wandb(redact(config or {}))

    def _init_wandb(self, config: dict):
        mode = self.settings.mode
        if mode == "online" and not (os.environ.get("WANDB_API_KEY") or Path.home().joinpath(".netrc").exists()):
            warnings.warn("wandb.mode is online but no API key is configured; logging offline instead "
                          "(sync later with `wandb sync`)", stacklevel=3)
            mode = "offline"
        try:
            import wandb

            return wandb.init(project=self.settings.project, entity=self.settings.entity, group=self.settings.group,
                              tags=self.settings.tags, name=self.settings.name, config=config, mode=mode,
                              dir=str(Path(self.settings.dir or self.out_dir).resolve()), reinit="finish_previous",
                              settings=wandb.Settings(init_timeout=60, silent=True, console="off"))
        except Exception as error:  # noqa: BLE001 - W&B must never fail a run
            warnings.warn(f"W&B logging disabled for this run: {type(error).__name__}: {error}", stacklevel=3)
            return None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        record = {"step": step, "time": time.time(), **metrics}
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        if self.run is not None:
            self._safe(lambda: self.run.log(metrics, step=step))

    def event(self, name: str, step: int, **fields: Any) -> None:
        """A lifecycle record (resumed, stopped) in the local log only."""
        record = {"event": name, "step": step, "time": time.time(), **fields}
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def log_media(self, step: int, images: dict[str, Path] | None = None, videos: dict[str, Path] | None = None,
                  meshes: dict[str, Path] | None = None) -> None:
        if self.run is None:
            return

        def send():
            import wandb

            payload = {k: wandb.Image(str(v)) for k, v in (images or {}).items()}
            payload |= {k: wandb.Video(str(v)) for k, v in (videos or {}).items()}
            payload |= {k: wandb.Object3D(str(v)) for k, v in (meshes or {}).items()}
            self.run.log(payload, step=step)

        self._safe(send)

    def summary(self, values: dict[str, Any]) -> None:
        """The run's summary (time, memory, back end): a `summary` event of the local log and the W&B summary."""
        self.event("summary", int(values.get("iterations", -1)), **values)
        if self.run is not None:
            self._safe(lambda: self.run.summary.update(values))

    def _safe(self, action) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001
            warnings.warn(f"W&B logging failed (run continues): {error}", stacklevel=3)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self._safe(lambda: self.run.finish(exit_code=exit_code))
            self.run = None

            def teardown():
                # Stop this process's wandb-core service and drop WANDB_SERVICE from the environment,
                # so child processes never attach to (and write through) a service that is gone.
                import wandb

                wandb.teardown()

            self._safe(teardown)
