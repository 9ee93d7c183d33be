"""`dreamflow-lab`: the research wing's commands (toy-model training; the experiments live in
lab/experiments/, each with its own script or workflow config)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_train_toy_prior(args) -> int:
    import torch

    from dreamflow_lab.toy_models.train_prior import ToyPriorTrainingConfig, train_toy_priors

    torch.set_num_threads(args.threads or torch.get_num_threads())
    config = ToyPriorTrainingConfig(output_dir=args.output_dir, seed=args.seed)
    if args.quick:
        config.views_plain, config.views_pattern, config.views_composition = 2, 1, 1
        config.vae_steps, config.unet_steps = 20, 20
        config.refiner_vae_steps, config.refiner_unet_steps = 10, 10
    print(json.dumps({k: str(v) for k, v in train_toy_priors(config, tuple(args.which)).items()}))
    return 0


def cmd_train_toy_clip(args) -> int:
    from dreamflow_lab.toy_models.train_clip import ToyCLIPTrainingConfig, train_toy_clip

    config = ToyCLIPTrainingConfig(output_dir=args.output_dir, seed=args.seed)
    if args.quick:
        config.views_plain, config.views_pattern, config.views_composition, config.steps = 2, 1, 1, 20
        config.dataset_cache = str(Path(args.output_dir) / ".cache")
    print(train_toy_clip(config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamflow-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-toy-prior", help="train the embedded toy priors (SD 2.x and SDXL-refiner format)")
    p.add_argument("--output-dir", default="models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--which", nargs="+", default=["base", "refiner"], choices=["base", "refiner"])
    p.add_argument("--quick", action="store_true", help="a few steps only (tests the command, not the model)")
    p.set_defaults(func=cmd_train_toy_prior)
    p = sub.add_parser("train-toy-clip", help="train the tiny open_clip model used for evaluation on the toy world")
    p.add_argument("--output-dir", default="models/toy-clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=cmd_train_toy_clip)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
