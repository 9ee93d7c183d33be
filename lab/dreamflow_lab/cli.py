"""`dreamflow-lab`: the research wing's commands (toy-model training; the experiments live in
lab/experiments/, each with its own script or workflow config)."""

from __future__ import annotations

import argparse
import json
import shlex
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


def cmd_race_2d(args) -> int:
    from dreamflow_lab.race2d import Race2DConfig, race_2d, write_race_2d_report

    race = Race2DConfig(methods=tuple(args.methods), prompts=tuple(args.prompts), seeds=tuple(args.seeds),
                        tuning_prompts=tuple(args.tuning_prompts), tuning_seeds=tuple(args.tuning_seeds),
                        learning_rates=tuple(args.learning_rates), optimizer=args.optimizer, views=args.views,
                        iterations=args.iterations, eval_every=args.eval_every, workers=args.workers)
    command = "dreamflow-lab race-2d " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "dreamflow-lab race-2d"
    print(write_race_2d_report(race_2d(args.config, race), race, Path(args.out), command))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dreamflow.guidance import available
    from dreamflow_lab.race2d import Race2DConfig
    from dreamflow_lab.toy_models.train_clip import ToyCLIPTrainingConfig

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
    p.add_argument("--output-dir", default=ToyCLIPTrainingConfig.output_dir)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=cmd_train_toy_clip)
    p = sub.add_parser("race-2d", help="2D race: guidance on latent images, step sizes tuned per method on held-out "
                                       "seeds -> lab/experiments/race2d/README.md")
    defaults = Race2DConfig()
    p.add_argument("--config", default="config/pipeline/toy.yaml")
    p.add_argument("--methods", nargs="+", default=list(available()), choices=available())
    p.add_argument("--prompts", nargs="+", default=list(defaults.prompts))
    p.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    p.add_argument("--tuning-prompts", nargs="+", default=list(defaults.tuning_prompts))
    p.add_argument("--tuning-seeds", nargs="+", type=int, default=list(defaults.tuning_seeds))
    p.add_argument("--learning-rates", nargs="+", type=float, default=list(defaults.learning_rates))
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=defaults.optimizer)
    p.add_argument("--views", type=int, default=defaults.views)
    p.add_argument("--iterations", type=int, default=defaults.iterations)
    p.add_argument("--eval-every", type=int, default=defaults.eval_every)
    p.add_argument("--workers", type=int, default=defaults.workers, help="runs side by side (one thread each)")
    p.add_argument("--out", default="lab/experiments/race2d/README.md")
    p.set_defaults(func=cmd_race_2d)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
