"""The suite planner: which assets a workflow config asks for, where each step's files lie, and which
variant's run of a step an asset reuses. Plain data in (the validated workflow config, the run-config
mapping, the prompt tables), paths and tables out; the workflow (`workflow/rules/common.smk`) calls it.

Every asset is (method, variant, prompt, seed). A variant is a named set of run-config overrides
declared in the suite config (`variants:`), each a wildcard of every output path; a tuning grid's
points are variants too. A variant that `starts_at` a later stage reuses the earlier steps of the
variant it comes `from`, which is allowed only when its overrides leave those steps unchanged.
Suites, races, tuning grids, recipe races and seed sweeps are all methods x prompts x seeds x
variants, plus the report rules their config asks for. Each prompt carries its id and group
(`dreamflow.prompts.Prompt`); a suite that asks for an evaluator's view layout (`export_views.layouts`)
gets each asset's views filed by prompt id (`views_folder`).
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from dreamflow.config import ConfigError, load_config_data, method_names, to_dict
from dreamflow.prompts import Prompt
from dreamflow.stages import EXTRACTION, FINAL_STAGE, STAGES, step_position

Entry = tuple[str, str, str, Any]  # (method, variant, slug, seed)
STAGE_ORDER = list(STAGES)


class SuitePlan:
    """The plan of one workflow config. Raises ValueError, naming the key, for a plan that cannot run."""

    def __init__(self, config: dict, pipeline_data: dict, prompts: dict[str, str],
                 tuning_prompts: dict[str, str] | None = None, prompt_entries: dict[str, Prompt] | None = None):
        self.config = config
        self.suite = config["suite"]
        self.methods = list(config["methods"])
        self.seeds = list(config["seeds"])
        self.curves = config["curves"]
        self.reports = config["reports"]
        self.tuning = config.get("tuning")
        self.prompts = dict(prompts)
        # slug -> Prompt (text, id, group); without entries, ids are the prompts' positions, in one group.
        self.prompt_entries = dict(prompt_entries or {slug: Prompt(text, str(i)) for i, (slug, text)
                                                      in enumerate(self.prompts.items())})
        self.slug_of_id = {entry.id: slug for slug, entry in self.prompt_entries.items()}
        self.layouts = list((config.get("export_views") or {}).get("layouts") or [])
        self.tuning_prompts = dict(tuning_prompts or {})
        self.pipeline_data = pipeline_data
        self.pipeline_overrides = dict(config.get("pipeline_overrides") or {})
        self.asset_folder = os.path.join(config["results_dir"], "{suite}", "{method}", "{variant}", "{slug}",
                                         "seed{seed}")
        self._check_methods_and_prompts()
        self.run_config = to_dict(load_config_data(pipeline_data, self.pipeline_overrides))
        # Each step reads only the config blocks it uses, so changing e.g. `stage3` re-runs stage 3 and
        # evaluation but keeps the cached NeRFs and meshes (blocks left out take their defaults).
        self.step_blocks = {**{name: list(stage.blocks()) for name, stage in STAGES.items()},
                            EXTRACTION.name: list(EXTRACTION.config_blocks), "evaluate": list(self.run_config)}
        self.variants, self.suite_variants, self.grid_points = self._variant_table()
        self.tuned = self.tuning["picks_for"] if self.tuning else None
        self._check_variants()

    # -- checks -----------------------------------------------------------------------------------
    def _check_methods_and_prompts(self) -> None:
        # The method list belongs to the guidance registry (the schema only checks the type).
        unknown = sorted(set(self.methods) - set(method_names()))
        if unknown:
            raise ValueError(f"config 'methods' has unknown guidance method(s) {unknown}; "
                             f"choose from {list(method_names())}")
        shared = sorted(set(self.prompts) & set(self.tuning_prompts))
        if shared:
            raise ValueError(f"tuning prompts must be held out from the suite's prompts; both hold {shared}")
        if set(self.prompt_entries) != set(self.prompts):
            raise ValueError("the prompt entries and the prompt table hold different prompts")
        groups = sorted({entry.group for entry in self.prompt_entries.values()})
        if self.layouts and len(self.slug_of_id) < len(self.prompt_entries):
            raise ValueError(f"export_views.layouts {self.layouts} file each asset by its prompt id, but the suite's "
                             f"groups {groups} share ids: give such a suite one prompt file")

    def _variant_table(self) -> tuple[dict[str, dict], list[str], list[str]]:
        """name -> {set, methods, starts_at, from}: the suite's variants, then the tuning grid's points."""
        declared = dict(self.config["variants"])
        grid = dict(self.tuning["grid"]) if self.tuning else {}
        clash = sorted(set(declared) & set(grid))
        if clash:
            raise ValueError(f"tuning grid point(s) {clash} have the name of a suite variant; rename one")
        first = next(iter(declared))
        table = {}
        for name, spec in {**declared, **grid}.items():
            spec = dict(spec or {})
            table[name] = {"set": dict(spec.get("set") or {}), "methods": spec.get("methods") or list(self.methods),
                           "starts_at": spec.get("starts_at", STAGE_ORDER[0]), "from": spec.get("from", first)}
        return table, list(declared), list(grid)

    def _resolved(self, variant: str) -> dict:
        return to_dict(load_config_data(self.pipeline_data, self.variant_overrides(variant)))

    def _check_variants(self) -> None:
        """Every variant builds a valid run config; one that starts late changes no earlier step."""
        for name, spec in self.variants.items():
            unknown = sorted(set(spec["methods"]) - set(self.methods))
            if unknown:
                raise ValueError(f"variant {name!r} lists method(s) {unknown} that are not in the suite's methods")
            if "seed" in spec["set"] or "guidance.method" in spec["set"]:
                raise ValueError(f"variant {name!r} sets 'seed' or 'guidance.method': those are the suite's "
                                 "`seeds` and `methods` (a variant may restrict `methods` instead)")
            try:
                resolved = self._resolved(name)
            except ConfigError as error:
                raise ValueError(f"variant {name!r}: {error}") from None
            if spec["starts_at"] not in STAGES:
                raise ValueError(f"variant {name!r} starts_at {spec['starts_at']!r}; choose one of {STAGE_ORDER}")
            if spec["starts_at"] == STAGE_ORDER[0]:
                continue
            if spec["from"] not in self.variants or spec["from"] == name:
                raise ValueError(f"variant {name!r} reuses earlier stages from {spec['from']!r}, which is not "
                                 "another variant")
            earlier = [step for step in [*STAGE_ORDER, EXTRACTION.name]
                       if step_position(step) < STAGE_ORDER.index(spec["starts_at"])]
            source = self._resolved(spec["from"])
            for step in earlier:
                if any(resolved[b] != source[b] for b in self.step_blocks[step]):
                    raise ValueError(f"variant {name!r} starts at {spec['starts_at']} but its overrides change "
                                     f"{step}, which it reuses from {spec['from']!r}: start it at that step instead")
        if self.tuning:
            if self.tuned not in self.suite_variants:
                raise ValueError(f"tuning.picks_for is {self.tuned!r}; it must name one of the suite's variants "
                                 f"{self.suite_variants}")
            if self.tuning["stage"] not in STAGES:
                raise ValueError(f"tuning.stage is {self.tuning['stage']!r}; choose one of {STAGE_ORDER}")
            if not self.curves["every"]:
                raise ValueError("a tuning grid is scored from quality curves: set curves.every (e.g. 25)")

    # -- variants and reuse -----------------------------------------------------------------------
    def variant_overrides(self, variant: str) -> dict:
        """The run-config overrides of `variant`: the suite's, then the variant's own."""
        return {**self.pipeline_overrides, **self.variants[variant]["set"]}

    def source_variant(self, variant: str, step: str) -> str:
        """The variant whose files hold `step` for `variant`: itself from its first stage on, else the one it reuses."""
        spec = self.variants[variant]
        if step_position(step) >= STAGE_ORDER.index(spec["starts_at"]):
            return variant
        return self.source_variant(spec["from"], step)

    def made_by(self, template: str, values: dict, step: str) -> str:
        """`template` (a path with wildcards) filled for the asset `values` names, in the folder of the
        variant whose run of `step` it uses (the reused variant's, when the asset's starts later)."""
        return template.format(**{**values, "variant": self.source_variant(values["variant"], step)})

    # -- paths ------------------------------------------------------------------------------------
    def asset(self, name: str) -> str:
        """results/{suite}/{method}/{variant}/{slug}/seed{seed}/NAME (wildcards left in)."""
        return os.path.join(self.asset_folder, name)

    def suite_file(self, name: str) -> str:
        """results/{suite}/NAME"""
        return os.path.join(self.config["results_dir"], "{suite}", name)

    def views_root(self, layout: str) -> str:
        """results/{suite}/LAYOUT/{variant}: a layout's root per variant (GPTEval3D's tournament folder)."""
        return os.path.join(self.config["results_dir"], "{suite}", layout, "{variant}")

    def views_folder(self, layout: str) -> str:
        """ROOT/methods/{method}/{prompt_id}/{seed}: where one asset's views lie in the layout (wildcards left in)."""
        return os.path.join(self.views_root(layout), "methods", "{method}", "{prompt_id}", "{seed}")

    def views_files(self, entries: list[Entry]) -> list[str]:
        """Every layout's folder of each entry's views."""
        folders = []
        for layout in self.layouts:
            for method, variant, slug, seed in entries:
                folders.append(self.views_folder(layout).format(
                    suite=self.suite, variant=variant, method=method, prompt_id=self.prompt_entries[slug].id,
                    seed=seed))
        return folders

    def entries(self, variants: Iterable[str], prompts: Iterable[str], seeds: Iterable) -> list[Entry]:
        """(method, variant, slug, seed) of every asset of `variants` (each variant's own methods)."""
        return [(method, variant, slug, seed) for variant in variants for method in self.variants[variant]["methods"]
                for slug in prompts for seed in seeds]

    def entry_path(self, entry: Entry, name: str, step: str | None = None) -> str:
        """Path of `name` for an entry of `entries` (written by `step` when given, see `made_by`)."""
        method, variant, slug, seed = entry
        values = {"suite": self.suite, "method": method, "variant": variant, "slug": slug, "seed": seed}
        return self.made_by(self.asset(name), values, step) if step is not None else self.asset(name).format(**values)

    def suite_entries(self) -> list[Entry]:
        return self.entries(self.suite_variants, self.prompts, self.seeds)

    def grid_entries(self) -> list[Entry]:
        return self.entries(self.grid_points, self.tuning_prompts, self.tuning["seeds"]) if self.tuning else []

    def study_entries(self) -> list[Entry]:
        """The preference study compares methods at the suite's first variant (the one every method runs)."""
        return self.entries(self.suite_variants[:1], self.prompts, self.seeds)

    def curve_files(self, entries: list[Entry], stages: Iterable[str] = STAGE_ORDER) -> list[str]:
        return [self.entry_path(e, f"{stage}/curve.csv", stage) for e in entries for stage in stages]

    def race_curve_files(self) -> list[str]:
        variants = self.config["race"].get("variants") or self.suite_variants
        return self.curve_files(self.entries(variants, self.prompts, self.seeds))

    def has_preference_study(self) -> bool:
        """A suite with the study's reference method and at least one other gets the preference study."""
        return self.config["preference"]["reference"] in self.methods and len(self.methods) >= 2

    def report_file(self, name: str) -> str:
        """results/SUITE/NAME"""
        return os.path.join(self.config["results_dir"], self.suite, name)

    def targets(self) -> list[str]:
        """Every asset's final mesh (and metrics, curves, layout views) and the reports: a deleted output is re-made."""
        targets = [self.entry_path(e, STAGES[FINAL_STAGE].path("mesh")) for e in self.suite_entries()]
        if "summary" in self.reports:
            targets += [self.entry_path(e, "metrics.json") for e in self.suite_entries()]
            targets += [self.report_file(name) for name in SUMMARY_FILES]
            if self.has_preference_study():
                targets += [self.report_file(name) for name in STUDY_FILES]
        if self.curves["every"]:
            targets += self.curve_files(self.suite_entries())
        targets += self.views_files(self.suite_entries())
        if "race" in self.reports:
            targets.append(self.report_file(RACE_REPORT))
        if "recipe" in self.reports:
            targets.append(self.report_file(RECIPE_REPORT))
        if self.tuning:
            targets.append(self.report_file(TUNING_PICK))
        return targets


# The reports' files under results/{suite}/ that the workflow's default target asks for.
SUMMARY_FILES = ("summary.csv", "summary.md", "report.html")
STUDY_FILES = ("study/index.html", "preference_judge.md")
RACE_REPORT = "race/race.md"
RECIPE_REPORT = "recipe/recipe_race.md"
TUNING_PICK = "tuning/pick.yaml"
