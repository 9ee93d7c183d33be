"""`dreamflow` command line: one subcommand per workflow step (the Snakemake rules call these)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml


def _overrides(pairs: list[str]) -> dict:
    result = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        result[key] = yaml.safe_load(value)
    return result


def _load_config(args):
    from dreamflow.config import load_config

    overrides = _overrides(args.set)
    if getattr(args, "method", None):
        overrides["guidance.method"] = args.method
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return load_config(args.config, overrides)


def _prompt(args) -> str:
    if args.prompt is not None:
        return args.prompt
    return Path(args.prompt_file).read_text(encoding="utf-8").strip()


def _logger(args, config, stage: str, prompt: str):
    from dreamflow.config import to_dict
    from dreamflow.training.logger import RunLogger, WandbSettings

    settings = WandbSettings(mode=args.wandb_mode, project=args.wandb_project, entity=args.wandb_entity,
                             group=args.wandb_group, tags=[config.guidance.method, stage, *(args.wandb_tags or [])],
                             name=f"{stage}-{config.guidance.method}-{prompt[:60]}", dir=args.wandb_dir)
    return RunLogger(args.out, settings, {"prompt": prompt, "stage": stage, **to_dict(config)})


def _add_config_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--config", help="run config YAML (or workflow config with a `pipeline:` block)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. stage1.iterations=100")
    parser.add_argument("--out", required=True, help=out_help)


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    from dreamflow.guidance import available

    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="the text prompt")
    group.add_argument("--prompt-file", help="file holding the prompt (safe for any characters)")
    parser.add_argument("--method", choices=available(), help="guidance method (overrides config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides config)")


def _add_wandb_arguments(parser: argparse.ArgumentParser) -> None:
    wandb = parser.add_argument_group("Weights & Biases")
    wandb.add_argument("--wandb-mode", default="disabled", choices=["disabled", "offline", "online"])
    wandb.add_argument("--wandb-project", default="dreamflow")
    wandb.add_argument("--wandb-entity")
    wandb.add_argument("--wandb-group")
    wandb.add_argument("--wandb-tags", nargs="*")
    wandb.add_argument("--wandb-dir")


def cmd_stage(args) -> int:
    from dreamflow.training.stages import StageInputs, get_stage, run_stage
    from dreamflow.training.status import clear_failure, record_failure
    from dreamflow.training.trainer import NonFiniteError, Preempted

    config = _load_config(args)
    prompt = _prompt(args)
    stage = args.command
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
    logger = _logger(args, config, stage, prompt)
    failure = lambda error, step=None: record_failure(args.out, stage, prompt, config.guidance.method,  # noqa: E731
                                                      config.seed, error, step)
    spec = get_stage(stage)
    inputs = StageInputs(**{name: Path(getattr(args, name)) for name in spec.inputs})
    try:
        result = run_stage(spec, config, prompt, args.out, logger, inputs)
    except NonFiniteError as error:
        failure(error, error.step)
        logger.finish(exit_code=1)
        print(f"error: {error}", file=sys.stderr)
        return 3
    except Preempted as error:
        logger.finish(exit_code=1)
        print(f"stopped: {error}", file=sys.stderr)
        return 128 + error.signal_number
    except Exception as error:
        failure(error)
        logger.finish(exit_code=1)
        raise
    clear_failure(args.out)
    logger.finish()
    print(json.dumps({"stage": stage, "steps": result.steps, "seconds": round(result.seconds, 2),
                      "resumed_from": result.resumed_from}))
    return 0


def cmd_extract(args) -> int:
    from dreamflow.export.extract import extract_mesh

    config = _load_config(args)
    report = extract_mesh(args.ckpt, config, args.out)
    print(json.dumps(report))
    return 0


def cmd_evaluate(args) -> int:
    from dreamflow.evaluate.metrics import evaluate_asset

    config = _load_config(args)
    from dreamflow.evaluate.metrics import AssetFiles

    files = AssetFiles(Path(args.stage1), Path(args.stage2), Path(args.stage3), Path(args.mesh) if args.mesh else None)
    metrics = evaluate_asset(config, _prompt(args), files, args.out, args.clip_model,
                             args.clip_pretrained, args.views, args.benchmarks or [], method=args.method,
                             suite_prompts=args.suite_prompts, detail_views=args.detail_views)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    return 0


def cmd_summarize(args) -> int:
    from dreamflow.evaluate.report import summarize_suite

    paths = summarize_suite(args.metrics, args.out_dir, args.suite)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def cmd_preference(args) -> int:
    from dreamflow.evaluate import preference

    if args.action == "study":
        key = preference.build_study(args.metrics, args.out_dir, args.key, args.suite, args.reference, args.seed)
        print(f"{len(key['pairs'])} pairs: {Path(args.out_dir) / 'index.html'} (give raters this folder; "
              f"keep {args.key} for the tally)")
        return 0
    if args.action == "judge":
        key = json.loads(Path(args.key).read_text())
        votes = preference.judge_votes(key, args.margin, args.clip_model)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(votes, indent=2))
        paths = preference.write_tally([args.out], args.key, Path(args.out).with_suffix(""), args.resamples)
    else:
        paths = preference.write_tally(args.votes, args.key, args.out, args.resamples)
    print(Path(paths["md"]).read_text())
    return 0


def cmd_train_toy_prior(args) -> int:
    import torch

    from dreamflow.toyworld.train_prior import ToyPriorTrainingConfig, train_toy_priors

    torch.set_num_threads(args.threads or torch.get_num_threads())
    config = ToyPriorTrainingConfig(output_dir=args.output_dir, seed=args.seed)
    if args.quick:
        config.views_plain, config.views_pattern, config.views_composition = 2, 1, 1
        config.vae_steps, config.unet_steps = 20, 20
        config.refiner_vae_steps, config.refiner_unet_steps = 10, 10
    which = tuple(args.which)
    print(json.dumps({k: str(v) for k, v in train_toy_priors(config, which).items()}))
    return 0


def cmd_train_toy_clip(args) -> int:
    from dreamflow.evaluate.toy_clip import ToyCLIPTrainingConfig, train_toy_clip

    config = ToyCLIPTrainingConfig(output_dir=args.output_dir, seed=args.seed)
    if args.quick:
        config.views_plain, config.views_pattern, config.views_composition, config.steps = 2, 1, 1, 20
        config.dataset_cache = str(Path(args.output_dir) / ".cache")
    print(train_toy_clip(config))
    return 0


def cmd_fetch_models(args) -> int:
    import os

    from dreamflow.priors.loading import fetch_models

    os.environ["DREAMFLOW_ALLOW_DOWNLOAD"] = "1"
    for path in fetch_models(args.models, args.cache_dir):
        print(path)
    return 0


def _variants(specs: list[str] | None) -> dict[str, dict]:
    """`LABEL:KEY=VALUE[,KEY=VALUE...]` -> {LABEL: overrides}; the method defaults to apfo."""
    variants = {}
    for spec in specs or []:
        label, _, pairs = spec.partition(":")
        if not label or not pairs:
            raise SystemExit(f"--variant expects LABEL:KEY=VALUE[,KEY=VALUE...], got {spec!r}")
        variants[label] = {"guidance.method": "apfo", **_overrides(pairs.split(","))}
    return variants


def cmd_benchmark(args) -> int:
    from dreamflow.benchmarks.convergence import RaceConfig, race
    from dreamflow.benchmarks.report import write_report

    config = RaceConfig(methods=tuple(args.methods), prompts=tuple(args.prompts), seeds=tuple(args.seeds),
                        stages=tuple(args.stages), mesh_seeds=tuple(args.mesh_seeds) if args.mesh_seeds else None,
                        eval_every=args.eval_every, overrides=_overrides(args.set),
                        variants=_variants(args.variant), iou_threshold=args.iou_threshold,
                        colour_threshold=args.colour_threshold, workers=args.workers,
                        tuning_factors=tuple(args.tune_factors or ()),
                        tuning_prompts=tuple(args.tuning_prompts or RaceConfig.tuning_prompts),
                        tuning_seeds=tuple(args.tuning_seeds or RaceConfig.tuning_seeds),
                        tuning_stage=args.tuning_stage)
    shard = tuple(int(x) for x in args.shard.split("/")) if args.shard else (0, 1)
    if args.throughput_only:
        from dreamflow.benchmarks.throughput import measure_throughput

        print(measure_throughput(args.config, overrides=_overrides(args.set)).round(3).to_markdown(index=False))
        return 0
    tuning = None
    if config.tuning_factors:
        from dreamflow.benchmarks.convergence import tune

        tuning, best = tune(args.config, config, args.work_dir)
        config.variants = {**best, **config.variants}
        print(tuning.round(3).to_markdown())
    curves = race(args.config, config, args.work_dir, shard)
    if args.shard:
        print(f"shard {args.shard} done; run again without --shard to write the report")
        return 0
    throughput = None
    if args.throughput:
        from dreamflow.benchmarks.throughput import measure_throughput

        throughput = measure_throughput(args.config, overrides=_overrides(args.set))
    sections = []
    if args.recipe_scale:
        from dreamflow.benchmarks.recipe import RecipeRaceConfig, recipe_race, write_recipe_section

        tuned = {variant.get("guidance.method", label): {k: v for k, v in variant.items() if k != "guidance.method"}
                 for label, variant in config.variants.items() if label in config.methods}
        recipes = RecipeRaceConfig(prompts=tuple(args.recipe_prompts or args.prompts), seeds=tuple(args.recipe_seeds or args.seeds),
                                   scale=args.recipe_scale, halvings=args.recipe_halvings, tuned=tuned,
                                   overrides=_overrides(args.set), workers=args.workers)
        results = recipe_race(args.config, recipes, Path(args.work_dir) / "recipes")
        results.to_csv(Path(args.out).with_name("recipe_race.csv"), index=False)
        sections.append(write_recipe_section(results, recipes))
    command = "dreamflow benchmark " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "dreamflow benchmark"
    notes_path = Path(args.out).with_name("benchmark_notes.md")  # hand-written analysis, appended if present
    notes = notes_path.read_text() if notes_path.exists() else ""
    print(write_report(curves, config, Path(args.out), command, throughput, notes, tuning, sections=sections))
    return 0


def cmd_benchmark_2d(args) -> int:
    from dreamflow.benchmarks.race2d import Race2DConfig, race_2d, write_race_2d_report

    race = Race2DConfig(methods=tuple(args.methods), prompts=tuple(args.prompts), seeds=tuple(args.seeds),
                        tuning_prompts=tuple(args.tuning_prompts), tuning_seeds=tuple(args.tuning_seeds),
                        learning_rates=tuple(args.learning_rates), optimizer=args.optimizer, views=args.views,
                        iterations=args.iterations, eval_every=args.eval_every, workers=args.workers)
    command = "dreamflow benchmark-2d " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "dreamflow benchmark-2d"
    print(write_race_2d_report(race_2d(args.config, race), race, Path(args.out), command))
    return 0


def cmd_prompts(args) -> int:
    from dreamflow.prompts import prompt_table

    for slug, prompt in prompt_table(args.file).items():
        print(f"{slug}\t{prompt}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dreamflow.guidance import available

    parser = argparse.ArgumentParser(prog="dreamflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from dreamflow.training.stages import STAGES

    for spec in STAGES.values():
        p = sub.add_parser(spec.name, help=spec.help)
        _add_config_arguments(p, f"output folder of {spec.name} (ckpt.pt, exports)")
        _add_prompt_arguments(p)
        if "init" in spec.inputs:
            p.add_argument("--init", required=True, help=f"checkpoint of {spec.previous} (ckpt.pt)")
        if "mesh" in spec.inputs:
            p.add_argument("--mesh", required=True, help="the mesh extracted from stage 1 (mesh/coarse.obj)")
        _add_wandb_arguments(p)
        p.set_defaults(func=cmd_stage)
    p = sub.add_parser("extract", help="marching cubes on a stage-1 NeRF -> coarse.obj")
    _add_config_arguments(p, "the mesh to write (.obj); extract.json is written beside it")
    p.add_argument("--ckpt", required=True, help="stage-1 checkpoint")
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("evaluate", help="CLIP score, toy ground-truth metrics and timings of one asset")
    _add_config_arguments(p, "the metrics file to write (.json)")
    _add_prompt_arguments(p)
    p.add_argument("--stage1", required=True, help="stage-1 checkpoint (NeRF)")
    p.add_argument("--mesh", help="mesh extracted from stage 1 (coarse.obj; its Chamfer distance on toy prompts)")
    p.add_argument("--stage2", required=True, help="stage-2 checkpoint")
    p.add_argument("--stage3", required=True, help="stage-3 checkpoint (the final asset)")
    p.add_argument("--clip-model", default="dreamflow-toy-clip")
    p.add_argument("--clip-pretrained", default="models/toy-clip/open_clip_model.safetensors")
    p.add_argument("--views", type=int, default=8, help="views for the CLIP score")
    p.add_argument("--detail-views", type=int, default=16, help="held-out views of the toy-world metrics")
    p.add_argument("--benchmarks", nargs="*", help="Snakemake benchmark files of this asset's rules")
    p.add_argument("--suite-prompts", help="the suite's prompt file (CLIP R-precision ranks against these)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("summarize", help="aggregate metrics.json files into summary.csv/.md, plots, report.html")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--suite", required=True)
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("preference", help="the paper's human-preference study: blind page, tally of votes, CLIP judge")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("study", help="write the blind study page (DreamFlow vs each baseline) and its key")
    q.add_argument("--metrics", nargs="+", required=True, help="the suite's metrics.json files")
    q.add_argument("--out-dir", required=True, help="folder for index.html and its anonymised assets")
    q.add_argument("--key", required=True, help="where to write study_key.json (keep it from the raters)")
    q.add_argument("--suite", required=True)
    q.add_argument("--reference", default="apfo", help="the method compared with every other (default apfo)")
    q.add_argument("--seed", type=int, default=0, help="seed of the left/right draw (recorded in the key)")
    q.set_defaults(func=cmd_preference)
    q = actions.add_parser("tally", help="merge raters' exported vote files into win/tie/lose percentages")
    q.add_argument("votes", nargs="+", help="votes-*.json files exported from the study page")
    q.add_argument("--key", default="study_key.json", help="the study's key (written beside the study folder)")
    q.add_argument("--out", default="preference", help="output prefix: PREFIX.csv, .md (the table), .png")
    q.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for the 95 %% intervals")
    q.set_defaults(func=cmd_preference)
    q = actions.add_parser("judge", help="automatic judge: the suite's CLIP scores vote on the study's pairs")
    q.add_argument("--key", required=True, help="the study's key")
    q.add_argument("--out", required=True, help="the judge's vote file (.json); its tally goes beside it")
    q.add_argument("--margin", type=float, default=0.5, help="CLIP-score difference (points) below which it is a tie")
    q.add_argument("--clip-model", help="name of the CLIP model, for the table's caption")
    q.add_argument("--resamples", type=int, default=2000)
    q.set_defaults(func=cmd_preference)
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
    p = sub.add_parser("fetch-models", help="download SD 2.1 and the SDXL refiner (needs internet)")
    p.add_argument("models", nargs="*", help="names (sd21, sd21-768, sdxl-refiner) or hub ids; default: all")
    p.add_argument("--cache-dir")
    p.set_defaults(func=cmd_fetch_models)
    p = sub.add_parser("benchmark", help="convergence race APFO vs SDS vs VSD on the toy world -> docs/benchmarks.md")
    p.add_argument("--config", default="config/toy.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--methods", nargs="+", default=list(available()), choices=available())
    p.add_argument("--prompts", nargs="+", default=["a red cube", "a blue sphere", "a yellow cone"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                   help="stages to race (in order; each needs the previous)")
    p.add_argument("--mesh-seeds", nargs="+", type=int, help="seeds that also race stages 2-3 (default: all)")
    p.add_argument("--variant", action="append", metavar="LABEL:KEY=VALUE,...",
                   help="an extra entry, e.g. apfo-sigma:guidance.schedule=sigma (method apfo unless given)")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--iou-threshold", type=float, default=0.8, help="held-out silhouette IoU to reach")
    p.add_argument("--colour-threshold", type=float, default=0.3, help="albedo colour error to get below")
    p.add_argument("--work-dir", default="results/benchmarks")
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--throughput", action="store_true", help="also measure per-stage iterations/s and memory")
    p.add_argument("--throughput-only", action="store_true", help="measure throughput only and print the table")
    p.add_argument("--shard", help="i/n: run only every n-th race entry (parallel workers), no report")
    p.add_argument("--workers", type=int, default=1, help="processes running entries side by side (1 thread each)")
    p.add_argument("--tune-factors", nargs="+", type=float,
                   help="fair tuning: learning-rate factors every method tries on held-out prompts/seeds first")
    p.add_argument("--tuning-prompts", nargs="+", help="held-out prompts for --tune-factors")
    p.add_argument("--tuning-seeds", nargs="+", type=int, help="held-out seeds for --tune-factors")
    p.add_argument("--tuning-stage", default="stage1", choices=list(STAGES),
                   help="the stage whose learning rates --tune-factors scales (earlier stages run at the config's)")
    p.add_argument("--recipe-scale", type=float,
                   help="also run the recipe race: published budgets (ProlificDreamer 25k+15k+30k, ...) times this "
                        "factor, DreamFlow's searched by halving; methods at their tuned settings")
    p.add_argument("--recipe-halvings", type=int, default=3, help="most halvings of DreamFlow's budget to try")
    p.add_argument("--recipe-prompts", nargs="+", help="prompts of the recipe race (default: --prompts)")
    p.add_argument("--recipe-seeds", nargs="+", type=int, help="seeds of the recipe race (default: --seeds)")
    p.set_defaults(func=cmd_benchmark)
    p = sub.add_parser("benchmark-2d", help="2D race: guidance on latent images, step sizes tuned per method "
                                            "on held-out seeds -> docs/race2d.md")
    from dreamflow.benchmarks.race2d import Race2DConfig

    defaults = Race2DConfig()
    p.add_argument("--config", default="config/toy.yaml")
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
    p.add_argument("--out", default="docs/race2d.md")
    p.set_defaults(func=cmd_benchmark_2d)
    p = sub.add_parser("prompts", help="validate a prompt file and list slug<TAB>prompt")
    p.add_argument("file")
    p.set_defaults(func=cmd_prompts)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dreamflow.config import ConfigError
    from dreamflow.evaluate.preference import StudyError
    from dreamflow.export.extract import EmptyMeshError
    from dreamflow.io import CorruptCheckpointError
    from dreamflow.priors.base import ModelNotFoundError
    from dreamflow.prompts import PromptFileError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ModelNotFoundError, PromptFileError, CorruptCheckpointError, EmptyMeshError,
            StudyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
