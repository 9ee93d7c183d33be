"""`dreamflow` command line, the product's commands: one per workflow step (the Snakemake rules call
these), the recipe and prompt checks, model download and speed measurement (`perf`). The research
wing's commands are `dreamflow-lab`'s."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

# `dreamflow perf ACTION`: the module whose `main(argv, prog)` runs it.
PERF_ACTIONS = {"throughput": "dreamflow.perf.throughput", "gpu-report": "dreamflow.perf.gpu_report",
                "stages": "dreamflow.perf.stages", "memory": "dreamflow.perf.memory"}


def _load_config(args):
    from dreamflow.config import load_config, parse_overrides

    overrides = parse_overrides(args.set)
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
    from dreamflow.config import method_names

    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="the text prompt")
    group.add_argument("--prompt-file", help="file holding the prompt (safe for any characters)")
    parser.add_argument("--method", choices=method_names(), help="guidance method (overrides config)")
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
    stage = args.stage
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
    logger = _logger(args, config, stage, prompt)
    failure = lambda error, step=None: record_failure(args.out, stage, prompt, config.guidance.method,  # noqa: E731
                                                      config.seed, error, step)
    spec = get_stage(stage)
    inputs = StageInputs(**{name: Path(getattr(args, name)) for name in spec.inputs})
    recorder = None
    if args.curve_every:
        from dreamflow.evaluate.curves import CurveRecorder, CurveSettings

        settings = CurveSettings(args.curve_every, args.curve_views, args.curve_clip_model, args.curve_clip_pretrained)
        # Built before the trainer seeds: loading CLIP draws from the global torch RNG.
        recorder = CurveRecorder(settings, config, prompt, spec.stage_config(config))
    try:
        result = run_stage(spec, config, prompt, args.out, logger, inputs, recorder)
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
    if recorder is not None:
        recorder.write(args.out, {"method": config.guidance.method, "variant": args.variant, "prompt": prompt,
                                  "seed": config.seed, "stage": stage})
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
    from dreamflow.config import ConfigError
    from dreamflow.evaluate.metrics import AssetFiles, evaluate_asset
    from dreamflow.stages import STAGES

    from dreamflow.evaluate.protocol import ClipModel, RetrievalProtocol

    if len(args.clip_model) != len(args.clip_pretrained):
        raise ConfigError(f"--clip-model names {len(args.clip_model)} model(s) but --clip-pretrained "
                          f"{len(args.clip_pretrained)} weights: give one weights file or tag per model, in order")
    models = tuple(ClipModel(model, pretrained) for model, pretrained in zip(args.clip_model, args.clip_pretrained))
    protocol = RetrievalProtocol(models, tuple(args.render_modes), args.captions, args.view_elevation,
                                 args.view_azimuth, args.view_distance_in_radii, args.view_fovy)
    config = _load_config(args)
    files = AssetFiles({name: Path(getattr(args, name)) for name in STAGES}, Path(args.mesh) if args.mesh else None)
    metrics = evaluate_asset(config, _prompt(args), files, args.out, models[0].model, models[0].pretrained, args.views,
                             args.benchmarks or [], method=args.method, variant=args.variant,
                             prompt_id=args.prompt_id, group=args.group,
                             suite_prompts=args.suite_prompts, detail_views=args.detail_views, retrieval=protocol)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    return 0


def cmd_summarize(args) -> int:
    from dreamflow.report.summary import summarize_suite

    paths = summarize_suite(args.metrics, args.out_dir, args.suite)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def cmd_preference(args) -> int:
    from dreamflow.study import preference

    if args.action == "study":
        key = preference.build_study(args.metrics, args.out_dir, args.key, args.suite, args.reference, args.seed,
                                     janus=args.janus)
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


def cmd_fetch_models(args) -> int:
    import os

    from dreamflow.priors.loading import fetch_models

    os.environ["DREAMFLOW_ALLOW_DOWNLOAD"] = "1"
    for path in fetch_models(args.models, args.cache_dir):
        print(path)
    return 0


def cmd_compare(args) -> int:
    """The comparison reports, each a pure function of the stages' curve files."""
    from dreamflow.compare.race import load_curves

    curves = load_curves(args.curves)
    out = Path(args.out)
    if args.action == "pick":
        from dreamflow.compare.tuning import pick, tuning_grid, tuning_table

        runs = tuning_table(curves, args.stage)
        grid = tuning_grid(runs)
        picks = pick(grid, yaml.safe_load(args.points))
        out.parent.mkdir(parents=True, exist_ok=True)
        runs.to_csv(out.with_name("tuning_runs.csv"), index=False)
        grid.to_csv(out.with_name("tuning_grid.csv"))
        out.write_text(yaml.safe_dump(picks, sort_keys=False))
        print(grid.round(3).to_markdown())
        return 0
    if args.action == "race":
        import pandas as pd

        from dreamflow.compare.race import RaceSettings, race_labels
        from dreamflow.compare.report import write_report

        settings = RaceSettings(args.iou_threshold, args.colour_threshold, args.clip_threshold,
                                args.eval_every, args.eval_views)
        tuning = picks = None
        if args.tuning:
            picks = yaml.safe_load(Path(args.tuning).read_text())
            tuning = pd.read_csv(Path(args.tuning).with_name("tuning_grid.csv"), index_col="method")
        notes = Path(args.notes).read_text() if args.notes and Path(args.notes).exists() else ""
        print(write_report(race_labels(curves), settings, out, args.regenerate, tuning, picks, args.tuning_text or "",
                           notes))
        return 0
    from dreamflow.compare.recipe import recipe_results, write_recipe_report

    print(write_recipe_report(recipe_results(curves), args.bar, args.candidates, args.tolerance, out, args.regenerate))
    return 0


def cmd_recipe(args) -> int:
    """The values each method runs with in each stage of a config, with their sources."""
    from dreamflow.config import parse_overrides
    from dreamflow.config.recipes import as_json, as_markdown, load_recipes
    from dreamflow.stages import STAGES

    rows = load_recipes(args.config, parse_overrides(args.set), [args.method] if args.method else None,
                        [args.stage] if args.stage else None, {name: spec.prior_block for name, spec in STAGES.items()})
    print(json.dumps(as_json(rows), indent=2) if args.json else as_markdown(rows))
    return 0


def cmd_perf(args) -> int:
    """Speed and memory measurements: each action is its module's own command line."""
    module = importlib.import_module(PERF_ACTIONS[args.action])
    return module.main(args.arguments, prog=f"dreamflow perf {args.action}")


def cmd_prompts(args) -> int:
    from dreamflow.prompts import SOURCES, fetch_prompts, read_prompt_entries

    if args.action == "fetch":
        print(json.dumps(fetch_prompts(args.name, args.out, args.from_file)))
    elif args.action == "check":
        for prompt in read_prompt_entries(args.file):
            print(f"{prompt.id}\t{prompt.slug}\t{prompt.text}")
    else:
        for source in SOURCES.values():
            pin = f"sha256 {source.sha256}" if source.sha256 else f"parsed list sha256 {source.list_sha256}"
            print(f"{source.name}\t{source.count}\t{source.title}\n\t{source.url}\n\t{pin}; licence: {source.licence}")
    return 0


def _prompt_id(text: str) -> int:
    """An evaluator's prompt id: GPTEval3D reads every folder under methods/<method>/ as an integer."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a prompt id: give the prompt's index in its suite "
                                         "(an integer >= 0)")
    return int(text)


def cmd_export_views(args) -> int:
    """A finished asset's renders in an evaluator's layout, filed under its method, prompt id and seed."""
    from dreamflow.config import load_config, load_config_data
    from dreamflow.export.layouts import LAYOUTS, ViewExportError
    from dreamflow.export.views import check_final_checkpoint, export_layout_views, layout_folder
    from dreamflow.io import load_checkpoint
    from dreamflow.priors.loading import resolve_device
    from dreamflow.prompts import read_prompt_entries

    state = load_checkpoint(args.ckpt)
    check_final_checkpoint(state, args.ckpt)
    # The asset's own run config by default: its colour field and scene radius must match the checkpoint.
    config = load_config(args.config) if args.config else load_config_data(state["config"])
    prompt = state.get("prompt", "")
    prompt_id = args.prompt_id
    if args.prompts:
        ids = {entry.text: entry.id for entry in read_prompt_entries(args.prompts)}
        if prompt not in ids:
            raise ViewExportError(f"the checkpoint's prompt {prompt!r} is not in {args.prompts}")
        if prompt_id is not None and str(prompt_id) != ids[prompt]:
            raise ViewExportError(f"--prompt-id {prompt_id} does not match {args.prompts}, where the checkpoint's "
                                  f"prompt {prompt!r} has id {ids[prompt]}")
        prompt_id = ids[prompt]
    if prompt_id is None:
        raise ViewExportError("the layout files an asset by its prompt id: pass --prompt-id ID, or --prompts FILE "
                              "(the suite's prompt file, where the checkpoint's prompt is looked up)")
    method = args.method or state["config"]["guidance"]["method"]
    seed = args.seed if args.seed is not None else state["config"]["seed"]
    folder = layout_folder(args.out, method, prompt_id, seed)
    report = export_layout_views(state, config, folder, LAYOUTS[args.layout], args.resolution,
                                 resolve_device(config.device))
    print(json.dumps({"prompt": prompt, "prompt_id": str(prompt_id), **report}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dreamflow.config import METHOD_CONFIGS
    from dreamflow.evaluate.protocol import (
        DREAM_FIELDS_AZIMUTH,
        DREAM_FIELDS_DISTANCE_IN_RADII,
        DREAM_FIELDS_ELEVATION,
        DREAM_FIELDS_FOVY,
        RENDER_MODES,
    )
    from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS
    from dreamflow.export.layouts import GPTEVAL3D, LAYOUTS
    from dreamflow.prompts import SOURCES
    from dreamflow.stages import FINAL_STAGE, STAGES
    from dreamflow.study.preference import RESAMPLES

    parser = argparse.ArgumentParser(prog="dreamflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for spec in STAGES.values():
        p = sub.add_parser(spec.name, help=spec.help)
        _add_config_arguments(p, f"output folder of {spec.name} (ckpt.pt, exports)")
        _add_prompt_arguments(p)
        if "init" in spec.inputs:
            p.add_argument("--init", required=True, help=f"checkpoint of {spec.previous} (ckpt.pt)")
        if "mesh" in spec.inputs:
            p.add_argument("--mesh", required=True, help=f"the mesh extracted from {spec.previous} (mesh/coarse.obj)")
        p.add_argument("--variant", default="base",
                       help="name of the suite variant this run belongs to (labels curves)")
        curves = p.add_argument_group("quality curve (curve.csv beside the checkpoint)")
        curves.add_argument("--curve-every", type=int, default=0, metavar="N",
                            help="score held-out views every N iterations (0: no curve)")
        curves.add_argument("--curve-views", type=int, default=8, help="held-out views per evaluation")
        curves.add_argument("--curve-clip-model", help="open_clip model for a CLIP score column (any prompt)")
        curves.add_argument("--curve-clip-pretrained", help="its weights file or pretrained tag")
        _add_wandb_arguments(p)
        p.set_defaults(func=cmd_stage, stage=spec.name)
    p = sub.add_parser("extract", help="marching cubes on a stage-1 NeRF -> coarse.obj")
    _add_config_arguments(p, "the mesh to write (.obj); extract.json is written beside it")
    p.add_argument("--ckpt", required=True, help="stage-1 checkpoint")
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("evaluate", help="CLIP score, toy ground-truth metrics and timings of one asset")
    _add_config_arguments(p, "the metrics file to write (.json)")
    _add_prompt_arguments(p)
    for spec in STAGES.values():
        p.add_argument(f"--{spec.name}", required=True, help=f"{spec.name} checkpoint")
    p.add_argument("--mesh", help="mesh extracted from stage 1 (coarse.obj; its Chamfer distance on toy prompts)")
    p.add_argument("--variant", default="base", help="name of the suite variant (recorded in metrics.json)")
    p.add_argument("--prompt-id", help="the prompt's id in its suite file (recorded in metrics.json)")
    p.add_argument("--group", help="the suite group the prompt belongs to, e.g. T3Bench's single (recorded in metrics.json)")
    p.add_argument("--clip-model", nargs="+", default=[TOY_CLIP_MODEL],
                   help="open_clip models for R-precision; the first also gives the CLIP score")
    p.add_argument("--clip-pretrained", nargs="+", default=[TOY_CLIP_WEIGHTS],
                   help="each model's weights file or pretrained tag (openai; none: random weights), in order")
    p.add_argument("--views", type=int, default=8, help="views for the CLIP score")
    p.add_argument("--detail-views", type=int, default=16, help="held-out views of the toy-world metrics")
    p.add_argument("--benchmarks", nargs="*", help="Snakemake benchmark files of this asset's rules")
    retrieval = p.add_argument_group("CLIP R-precision (DreamFusion's protocol, dreamflow/evaluate/retrieval.py)")
    retrieval.add_argument("--suite-prompts", help="the suite's prompt file (always in the retrieval set; needed "
                                                   "unless --captions gives 2 captions or more)")
    retrieval.add_argument("--captions", help="caption file to retrieve among, with the suite's prompts "
                                              "(DreamFusion: Dream Fields' 153 COCO captions); default: the suite's prompts")
    retrieval.add_argument("--render-modes", nargs="+", default=list(RENDER_MODES), choices=list(RENDER_MODES),
                           help="colour: the albedo; textureless: the surface shaded with a white albedo")
    retrieval.add_argument("--view-elevation", type=float, default=DREAM_FIELDS_ELEVATION,
                           help="elevation (degrees) of the one view rendered (Dream Fields: 45)")
    retrieval.add_argument("--view-azimuth", type=float, default=DREAM_FIELDS_AZIMUTH,
                           help="its azimuth (degrees; Dream Fields: 30)")
    retrieval.add_argument("--view-distance-in-radii", type=float, default=DREAM_FIELDS_DISTANCE_IN_RADII,
                           help="its distance in the scene's bounding radii, nerf.radius (Dream Fields: 4)")
    retrieval.add_argument("--view-fovy", type=float, default=DREAM_FIELDS_FOVY,
                           help="its vertical field of view (degrees; Dream Fields: 39.6)")
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
    q.add_argument("--no-janus", dest="janus", action="store_false",
                   help="do not ask, per asset, whether it shows more than one face or front")
    q.set_defaults(func=cmd_preference)
    q = actions.add_parser("tally", help="merge raters' exported vote files into win/tie/lose percentages and "
                                         "each method's Janus rate")
    q.add_argument("votes", nargs="+", help="votes-*.json files exported from the study page")
    q.add_argument("--key", default="study_key.json", help="the study's key (written beside the study folder)")
    q.add_argument("--out", default="preference", help="output prefix: PREFIX.csv, .md (the table), .png")
    q.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples for the 95 %% intervals")
    q.set_defaults(func=cmd_preference)
    q = actions.add_parser("judge", help="automatic judge: the suite's CLIP scores vote on the study's pairs")
    q.add_argument("--key", required=True, help="the study's key")
    q.add_argument("--out", required=True, help="the judge's vote file (.json); its tally goes beside it")
    q.add_argument("--margin", type=float, default=0.5, help="CLIP-score difference (points) below which it is a tie")
    q.add_argument("--clip-model", help="name of the CLIP model, for the table's caption")
    q.add_argument("--resamples", type=int, default=RESAMPLES)
    q.set_defaults(func=cmd_preference)
    p = sub.add_parser("fetch-models", help="download SD 2.1 and the SDXL refiner (needs internet)")
    p.add_argument("models", nargs="*", help="names (sd21, sd21-768, sdxl-refiner) or hub ids; default: all")
    p.add_argument("--cache-dir")
    p.set_defaults(func=cmd_fetch_models)
    p = sub.add_parser("compare", help="comparison reports from the stages' curve files (the workflow's race, "
                                       "tuning and recipe rules call these)")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("pick", help="fair tuning: each method's best grid point on the held-out runs")
    q.add_argument("--stage", required=True, choices=list(STAGES), help="the stage whose final score is compared")
    q.add_argument("--points", required=True, help="YAML mapping: grid point -> its run-config overrides")
    q = actions.add_parser("race", help="convergence race report: thresholds, paired ratios, curves")
    q.add_argument("--iou-threshold", type=float, default=0.8, help="held-out silhouette IoU to reach")
    q.add_argument("--colour-threshold", type=float, default=0.3, help="albedo colour error to get below")
    q.add_argument("--clip-threshold", type=float, default=30.0, help="CLIP score to reach (prompts without truth)")
    q.add_argument("--eval-every", type=int, default=25, help="the curves' interval (for the text)")
    q.add_argument("--eval-views", type=int, default=8, help="the curves' views (for the text)")
    q.add_argument("--tuning", help="the tuning's pick.yaml (tuning_grid.csv beside it)")
    q.add_argument("--tuning-text", help="where the tuning ran (held-out prompts, seeds, stage), for the report")
    q.add_argument("--notes", help="hand-written analysis appended to the report, if the file exists")
    q = actions.add_parser("recipe", help="recipe race report: each recipe's final quality and time vs the bar")
    q.add_argument("--bar", required=True, help="the variant setting the quality bar (ProlificDreamer's recipe)")
    q.add_argument("--candidates", nargs="+", required=True, help="DreamFlow's budget variants, largest first")
    q.add_argument("--tolerance", type=float, default=0.1, help="how far above the bar's score still matches")
    for q in actions.choices.values():
        q.add_argument("--curves", nargs="+", required=True, help="curve.csv files of the compared runs")
        q.add_argument("--out", required=True, help="the report (pick.yaml, race.md, recipe_race.md)")
        q.add_argument("--regenerate", default="snakemake --cores all", metavar="COMMAND",
                       help="the command that regenerates it (quoted in the report)")
        q.set_defaults(func=cmd_compare)
    p = sub.add_parser("recipe", help="the values each guidance method runs with in each stage of a config "
                                      "(CFG, t range and anneal, weighting, source model, LoRA, optimiser, "
                                      "iterations), each with its source")
    p.add_argument("--config", help="run config YAML (or workflow config with a `pipeline:` block); default: built-in")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--method", choices=list(METHOD_CONFIGS), help="one method only")
    p.add_argument("--stage", choices=list(STAGES), help="one stage only")
    p.add_argument("--json", action="store_true", help="JSON: {method: {stage: {key: {value, source}}}}")
    p.set_defaults(func=cmd_recipe)
    p = sub.add_parser("perf", help="speed and memory of the stages on this machine: throughput (s/iteration, "
                                    "floor, UNet share), gpu-report (the GPU check's rows), stages (each stage end "
                                    "to end), memory (peak GPU memory estimate); `dreamflow perf ACTION --help`",
                       description=importlib.import_module("dreamflow.perf").__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=list(PERF_ACTIONS))
    p.add_argument("arguments", nargs=argparse.REMAINDER, help="the action's own options")
    p.set_defaults(func=cmd_perf)
    p = sub.add_parser("prompts", help="prompt files: fetch a public benchmark suite by name, check a file, list "
                                       "the suites")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("fetch", help="download a public suite (pinned commit, sha256-checked, cached) and write "
                                         "it as a prompt file of ID<TAB>prompt lines")
    q.add_argument("name", choices=list(SOURCES), help="the suite (`dreamflow prompts sources` lists them)")
    q.add_argument("--from", dest="from_file", metavar="FILE",
                   help="read a copy of the source file instead of downloading it (checked the same way)")
    q.add_argument("--out", help="the prompt file to write (default prompts/NAME.txt)")
    q = actions.add_parser("check", help="validate a prompt file and list id<TAB>slug<TAB>prompt")
    q.add_argument("file")
    actions.add_parser("sources", help="the suites `fetch` knows: count, source URL and pin")
    p.set_defaults(func=cmd_prompts)
    p = sub.add_parser("export-views", help="render a finished asset in an evaluator's layout (GPTEval3D: 120 "
                                            "threestudio test views, rgb_<i>.png and normal_<i>.png)")
    p.add_argument("--layout", required=True, choices=list(LAYOUTS))
    p.add_argument("--config", help="run config YAML (default: the one the checkpoint was trained with)")
    p.add_argument("--ckpt", required=True, help=f"the asset's {FINAL_STAGE} checkpoint ({FINAL_STAGE}/ckpt.pt)")
    p.add_argument("--out", required=True, help="the layout's root: views go to OUT/methods/METHOD/PROMPT_ID/SEED/")
    p.add_argument("--resolution", type=int, default=GPTEVAL3D.resolution, help="render size in pixels (square)")
    p.add_argument("--prompt-id", type=_prompt_id, help="the prompt's id in its suite (GPTEval3D: the index in "
                                                       "prompts.json; an integer >= 0)")
    p.add_argument("--prompts", metavar="FILE", help="the suite's prompt file: the checkpoint's prompt is looked up "
                                                     "there for its id (and checked against --prompt-id)")
    p.add_argument("--method", help="the method's folder name (default: the checkpoint's guidance method)")
    p.add_argument("--seed", type=int, help="the seed's folder name (default: the checkpoint's seed)")
    p.set_defaults(func=cmd_export_views)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """Errors a user can act on: printed as one line with exit status 2 instead of a traceback."""
    from dreamflow.config import ConfigError
    from dreamflow.export.layouts import ViewExportError
    from dreamflow.geometry.mesh import EmptyMeshError
    from dreamflow.io import CorruptCheckpointError
    from dreamflow.priors.base import ModelNotFoundError
    from dreamflow.prompts import PromptFileError
    from dreamflow.study.preference import StudyError

    return (ConfigError, ModelNotFoundError, PromptFileError, CorruptCheckpointError, EmptyMeshError, StudyError,
            ViewExportError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as error:
        # Imported only on failure: the error classes' modules import torch, which most commands never need.
        if isinstance(error, user_errors()):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
