"""The paper's human-preference study (its Table 1): raters see DreamFlow's asset and a baseline's
side by side, blind and in random order, and answer left / tie / right; the tally gives win / tie /
lose percentages of DreamFlow against each baseline with 95 % bootstrap intervals and the raters'
agreement. An automatic judge (the suite's CLIP scores with a tie margin) votes on the same pairs
for suites without human votes, and its file is tallied the same way.

Raters may also say of each asset whether it shows more than one face or front (the Janus problem:
yes / no / unsure); the tally gives each method's Janus rate, yes / (yes + no), with a 95 % Wilson
score interval (`janus_rates`).

Files: `study/index.html` (+ `study/assets/`, anonymised) is what raters get; `study_key.json`
(kept apart) says which method is on which side; each rater's page exports `votes-*.json`.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dreamflow.evaluate.metric_names import METHOD_NAMES
from dreamflow.io import atomic_write_bytes
from dreamflow.report.spread import cluster_bootstrap_interval
from dreamflow.stages import FINAL_STAGE, STAGES
from dreamflow.study.page import study_page

REFERENCE = "apfo"
RESAMPLES = 2000  # bootstrap resamples of the 95 % intervals
CHOICES = ("left", "tie", "right")
OUTCOMES = ("win", "tie", "lose")
JANUS_QUESTION = "janus"  # the optional per-asset question's id in vote files
JANUS_TEXT = "Does this object show more than one face or front?"
JANUS_CHOICES = ("yes", "no", "unsure")
WILSON_Z = 1.959964  # the normal quantile of a two-sided 95 % interval
DEFAULT_QUESTIONS = {
    "overall": "Which 3D asset is better overall: closer to the prompt, more detailed and realistic, and "
               "consistent from every side?",
}


class StudyError(ValueError):
    """A study, vote file or key that cannot be used as given (the message says what to do)."""


@dataclass(frozen=True)
class Asset:
    method: str
    prompt: str
    seed: int
    folder: Path  # results/{suite}/{method}/{variant}/{slug}/seed{seed}
    clip_score: float | None


def load_assets(metrics_files: list[str | Path]) -> list[Asset]:
    """The finished assets (metrics.json with status ok) among `metrics_files`; others are skipped."""
    assets = []
    for path in map(Path, metrics_files):
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if data.get("status") != "ok":
            continue
        assets.append(Asset(data["method"], data["prompt"], int(data["seed"]), path.parent, data.get("clip_score")))
    return assets


def _token(*parts) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12]


def build_study(metrics_files: list[str | Path], study_dir: str | Path, key_path: str | Path, suite: str,
                reference: str = REFERENCE, seed: int = 0, questions: dict[str, str] | None = None,
                janus: bool = True) -> dict:
    """Write the blind study page and its key; returns the key.

    One pair per (prompt, seed, baseline) where both the reference's and the baseline's assets
    finished. Sides are drawn from `random.Random(seed)` (recorded in the key); the page holds
    only opaque asset names, so nothing in it tells the methods apart. `janus`: ask, per asset,
    the optional Janus question.
    """
    questions = questions or DEFAULT_QUESTIONS
    assets = {(a.method, a.prompt, a.seed): a for a in load_assets(metrics_files)}
    baselines = sorted({m for m, _, _ in assets} - {reference})
    if not any(m == reference for m, _, _ in assets):
        raise StudyError(f"no finished asset of the reference method {reference!r} among {len(metrics_files)} "
                         f"metrics files: the study compares it with each baseline")
    if not baselines:
        raise StudyError(f"the study needs a second method beside {reference!r}: add one to the suite's `methods`")
    rng = random.Random(seed)
    study_id = _token(suite, seed, time.time())
    study_dir, key_path = Path(study_dir), Path(key_path)
    if (study_dir / "assets").exists():
        shutil.rmtree(study_dir / "assets")
    (study_dir / "assets").mkdir(parents=True)
    pairs, key_pairs = [], {}
    for (method, prompt, asset_seed), ours in sorted(assets.items(), key=lambda item: (item[0][1], item[0][2])):
        if method != reference:
            continue
        for baseline in baselines:
            theirs = assets.get((baseline, prompt, asset_seed))
            if theirs is None:
                continue
            pair_id = f"p{len(pairs) + 1:03d}"
            left, right = (ours, theirs) if rng.random() < 0.5 else (theirs, ours)
            sides = {}
            for side, asset in (("left", left), ("right", right)):
                token = _token(study_id, pair_id, side)
                source = asset.folder / STAGES[FINAL_STAGE].path("turntable")
                shutil.copyfile(source, study_dir / "assets" / f"{token}.gif")
                sides[side] = f"assets/{token}.gif"
            pairs.append({"pair": pair_id, "prompt": prompt, **sides})
            key_pairs[pair_id] = {"prompt": prompt, "seed": asset_seed, "baseline": baseline,
                                  "left": left.method, "right": right.method,
                                  "left_asset": str(left.folder), "right_asset": str(right.folder)}
    if not pairs:
        raise StudyError(f"no (prompt, seed) has finished assets of both {reference!r} and a baseline "
                         f"({baselines}): nothing to compare")
    rng.shuffle(pairs)  # the order raters see; the key keeps each pair's identity
    key = {"study": study_id, "suite": suite, "reference": reference, "side_seed": seed,
           "questions": questions, "janus": JANUS_TEXT if janus else None, "pairs": key_pairs}
    atomic_write_bytes(key_path, lambda s: s.write(json.dumps(key, indent=2).encode()))
    page = study_page(study_id, suite, pairs, questions, key["janus"])
    atomic_write_bytes(study_dir / "index.html", lambda s: s.write(page.encode()))
    return key


def judge_votes(key: dict, margin: float, clip_model: str | None = None) -> dict:
    """The automatic judge's votes on the study's pairs: the side whose asset has the higher CLIP
    score (the suite's CLIP model, mean over its rendered views, from metrics.json) wins when the
    difference exceeds `margin` CLIP points, else a tie."""
    votes = []
    for pair_id, pair in key["pairs"].items():
        scores = {side: json.loads((Path(pair[f"{side}_asset"]) / "metrics.json").read_text())["clip_score"]
                  for side in ("left", "right")}
        difference = scores["left"] - scores["right"]
        choice = "tie" if abs(difference) <= margin else ("left" if difference > 0 else "right")
        for question in key["questions"]:
            votes.append({"pair": pair_id, "question": question, "choice": choice,
                          "left_score": scores["left"], "right_score": scores["right"]})
    rater = f"CLIP judge ({clip_model or 'suite CLIP'}, tie margin {margin} points)"
    return {"study": key["study"], "rater": rater, "automatic": True, "votes": votes}


def read_votes(paths: list[str | Path], key: dict) -> pd.DataFrame:
    """Every vote of every file as a row (rater, pair, question, choice, baseline, outcome).

    A file of another study, an unknown pair or choice is an error naming the file; a rater's
    later vote on the same pair and question replaces the earlier one."""
    rows = []
    for path, rater, vote in _vote_entries(paths, key):
        if vote.get("question") == JANUS_QUESTION:  # the per-asset question: `read_janus`
            continue
        pair = key["pairs"].get(vote.get("pair"))
        if pair is None or vote.get("choice") not in CHOICES:
            raise StudyError(f"{path}: vote {vote} names an unknown pair or choice (choices: {CHOICES})")
        if vote["choice"] == "tie":
            outcome = "tie"
        else:
            outcome = "win" if pair[vote["choice"]] == key["reference"] else "lose"
        rows.append({"rater": rater, "file": str(path), "pair": vote["pair"],
                     "question": vote.get("question", "overall"), "choice": vote["choice"],
                     "baseline": pair["baseline"], "outcome": outcome})
    frame = pd.DataFrame(rows, columns=["rater", "file", "pair", "question", "choice", "baseline", "outcome"])
    return frame.drop_duplicates(["rater", "pair", "question"], keep="last")


def _vote_entries(paths: list[str | Path], key: dict):
    """(file, rater, vote) of every vote in `paths`; a file of another study is an error naming it."""
    for path in map(Path, paths):
        data = json.loads(path.read_text())
        if data.get("study") != key["study"]:
            raise StudyError(f"{path} holds votes of study {data.get('study')!r}, but the key is for study "
                             f"{key['study']!r}: pass the study_key.json written with that page")
        rater = str(data.get("rater") or path.stem)
        for vote in data.get("votes", []):
            yield path, rater, vote


def read_janus(paths: list[str | Path], key: dict) -> pd.DataFrame:
    """The Janus answers as rows (rater, pair, side, asset, method, choice); a rater's answer on an asset
    shown in several pairs counts once (the last one given)."""
    rows = []
    for path, rater, vote in _vote_entries(paths, key):
        if vote.get("question") != JANUS_QUESTION:
            continue
        pair = key["pairs"].get(vote.get("pair"))
        side = vote.get("side")
        if pair is None or side not in ("left", "right") or vote.get("choice") not in JANUS_CHOICES:
            raise StudyError(f"{path}: Janus answer {vote} names an unknown pair, side (left, right) or choice "
                             f"(choices: {JANUS_CHOICES})")
        rows.append({"rater": rater, "file": str(path), "pair": vote["pair"], "side": side,
                     "asset": pair[f"{side}_asset"], "method": pair[side], "choice": vote["choice"]})
    frame = pd.DataFrame(rows, columns=["rater", "file", "pair", "side", "asset", "method", "choice"])
    return frame.drop_duplicates(["rater", "asset"], keep="last")


def wilson_interval(hits: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson's score interval of a proportion hits / n (NaN, NaN when n is 0)."""
    if n == 0:
        return float("nan"), float("nan")
    share = hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def janus_rates(janus: pd.DataFrame) -> pd.DataFrame:
    """Per method: yes / no / unsure answers, the assets and raters behind them, and the Janus rate
    yes / (yes + no) in % with its 95 % Wilson score interval (each rater's answer on an asset is one
    trial; unsure answers are counted but left out of the rate)."""
    rows = []
    for method, group in janus.groupby("method", sort=False):
        counts = {choice: int((group["choice"] == choice).sum()) for choice in JANUS_CHOICES}
        decided = counts["yes"] + counts["no"]
        low, high = wilson_interval(counts["yes"], decided)
        rows.append({"method": method, **counts, "assets": group["asset"].nunique(), "raters": group["rater"].nunique(),
                     "janus_pct": 100 * counts["yes"] / decided if decided else float("nan"),
                     "janus_low": 100 * low, "janus_high": 100 * high})
    return pd.DataFrame(rows, columns=["method", *JANUS_CHOICES, "assets", "raters", "janus_pct", "janus_low",
                                       "janus_high"])


def janus_table(rates: pd.DataFrame) -> str:
    """The Janus rates in Markdown."""
    lines = [f"**{JANUS_TEXT}** (optional, per asset)\n",
             "| Method | Janus rate (%) | yes | no | unsure | assets | raters |", "|---|---|---|---|---|---|---|"]
    for _, row in rates.iterrows():
        rate = ("–" if np.isnan(row["janus_pct"])
                else f"{row['janus_pct']:.1f} [{row['janus_low']:.0f}, {row['janus_high']:.0f}]")
        lines.append(f"| {METHOD_NAMES.get(row['method'], row['method'])} | {rate} | {row['yes']} | {row['no']} | "
                     f"{row['unsure']} | {row['assets']} | {row['raters']} |")
    lines.append("\nJanus rate: yes / (yes + no) over each rater's answer on each asset (an asset shown in several "
                 "pairs counts once per rater); brackets: 95 % Wilson score interval; unsure answers are not in "
                 "the rate.")
    return "\n".join(lines) + "\n"


def bootstrap_interval(votes: pd.DataFrame, outcome: str, resamples: int, rng: np.random.Generator,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the share of `outcome`, resampling pairs (all their raters' votes together)."""
    hits = (votes["outcome"] == outcome).to_numpy(float)
    return cluster_bootstrap_interval(hits, votes["pair"].to_numpy(), rng, resamples, level)


def krippendorff_alpha(votes: pd.DataFrame) -> float:
    """Krippendorff's alpha (nominal) over units (pair, question) rated by two or more raters;
    NaN when no unit has two ratings or every rating is the same category."""
    units = [group["choice"].tolist() for _, group in votes.groupby(["pair", "question"]) if len(group) >= 2]
    if not units:
        return float("nan")
    categories = {c: i for i, c in enumerate(CHOICES)}
    coincidence = np.zeros((len(CHOICES), len(CHOICES)))
    for ratings in units:
        counts = np.bincount([categories[r] for r in ratings], minlength=len(CHOICES)).astype(float)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(ratings) - 1)
    totals, n = coincidence.sum(1), coincidence.sum()
    observed = n - np.trace(coincidence)
    expected = (n * n - (totals ** 2).sum()) / (n - 1)
    return float("nan") if expected == 0 else float(1 - observed / expected)


def pairwise_agreement(votes: pd.DataFrame) -> float:
    """Share of rater pairs that chose the same answer, over units rated by two or more raters."""
    agree = total = 0
    for _, group in votes.groupby(["pair", "question"]):
        choices = group["choice"].tolist()
        for i in range(len(choices)):
            for j in range(i + 1, len(choices)):
                agree += choices[i] == choices[j]
                total += 1
    return float("nan") if total == 0 else agree / total


def tally(votes: pd.DataFrame, key: dict, resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Win / tie / lose percentages of the reference against each baseline (per question), with 95 %
    bootstrap intervals over pairs, vote and pair counts, raters and their agreement."""
    rng = np.random.default_rng(seed)
    rows = []
    for (question, baseline), group in votes.groupby(["question", "baseline"]):
        row = {"question": question, "baseline": baseline, "votes": len(group), "pairs": group["pair"].nunique(),
               "raters": group["rater"].nunique()}
        for outcome in OUTCOMES:
            row[f"{outcome}_pct"] = 100 * float((group["outcome"] == outcome).mean())
            low, high = bootstrap_interval(group, outcome, resamples, rng)
            row[f"{outcome}_low"], row[f"{outcome}_high"] = 100 * low, 100 * high
        row["krippendorff_alpha"] = krippendorff_alpha(group)
        row["agreement_pct"] = 100 * pairwise_agreement(group)
        rows.append(row)
    return pd.DataFrame(rows)


def paper_table(table: pd.DataFrame, key: dict, source: str, resamples: int = RESAMPLES) -> str:
    """The tally as the paper's Table 1 (rows: DreamFlow vs. each baseline), in Markdown."""
    reference = METHOD_NAMES.get(key["reference"], key["reference"])
    lines = [f"{source}\n"]
    for question, group in table.groupby("question", sort=False):
        lines.append(f"**{key['questions'].get(question, question)}**\n")
        lines.append(f"| {reference} vs. | Win (%) | Tie (%) | Lose (%) | votes | pairs | raters | agreement |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for _, row in group.iterrows():
            cells = [f"{row[f'{o}_pct']:.1f} [{row[f'{o}_low']:.0f}, {row[f'{o}_high']:.0f}]" for o in OUTCOMES]
            agreement = ("–" if row["raters"] < 2 or np.isnan(row["agreement_pct"])
                         else f"{row['agreement_pct']:.0f} % (α = {row['krippendorff_alpha']:.2f})")
            lines.append(f"| {METHOD_NAMES.get(row['baseline'], row['baseline'])} | {' | '.join(cells)} | "
                         f"{row['votes']} | {row['pairs']} | {row['raters']} | {agreement} |")
        lines.append("")
    lines.append(f"Brackets: 95 % bootstrap interval over pairs ({resamples} resamples). Agreement: share of rater "
                 "pairs giving the same answer, with Krippendorff's alpha (nominal).")
    return "\n".join(lines) + "\n"


def plot_tally(table: pd.DataFrame, key: dict, path: str | Path, title: str) -> None:
    """Stacked win / tie / lose bars per baseline, with the win share's interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"vs {METHOD_NAMES.get(b, b)}" + (f" · {q}" if table['question'].nunique() > 1 else "")
              for b, q in zip(table["baseline"], table["question"])]
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(table) + 1.4))
    left = np.zeros(len(table))
    for outcome, colour in zip(OUTCOMES, ("#2e7d32", "#bdbdbd", "#c62828")):
        values = table[f"{outcome}_pct"].to_numpy()
        ax.barh(labels, values, left=left, color=colour, label=outcome)
        left += values
    win = table["win_pct"].to_numpy()
    ax.errorbar(win, labels, xerr=[win - table["win_low"].to_numpy(), table["win_high"].to_numpy() - win],
                fmt="none", ecolor="black", capsize=3)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of votes ({METHOD_NAMES.get(key['reference'], key['reference'])}: win / tie / lose)")
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=3, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_tally(vote_files: list[str | Path], key_path: str | Path, out_prefix: str | Path,
                resamples: int = RESAMPLES) -> dict[str, Path]:
    """Tally vote files into `{out_prefix}.csv|.md|.png` (and `{out_prefix}_janus.csv` with the Janus rates
    where raters answered that question); returns the paths."""
    key = json.loads(Path(key_path).read_text())
    votes = read_votes(vote_files, key)
    if votes.empty:
        raise StudyError(f"no votes in {[str(p) for p in vote_files]}: export them from the study page first")
    table = tally(votes, key, resamples)
    automatic = all(json.loads(Path(p).read_text()).get("automatic") for p in vote_files)
    raters = sorted(votes["rater"].unique())
    source = (f"Automatic judge, not human votes: {raters[0]}." if automatic
              else f"Votes from the study page: {len(raters)} rater(s) ({', '.join(raters)}), {len(votes)} votes.")
    out_prefix = Path(out_prefix)
    paths = {"csv": out_prefix.with_suffix(".csv"), "md": out_prefix.with_suffix(".md"),
             "png": out_prefix.with_suffix(".png")}
    atomic_write_bytes(paths["csv"], lambda s: s.write(table.to_csv(index=False).encode()))
    markdown = f"# Preference study, suite `{key['suite']}`\n\n{paper_table(table, key, source, resamples)}"
    janus = read_janus(vote_files, key)
    if not janus.empty:
        rates = janus_rates(janus)
        paths["janus"] = out_prefix.with_name(f"{out_prefix.name}_janus.csv")
        atomic_write_bytes(paths["janus"], lambda s: s.write(rates.to_csv(index=False).encode()))
        markdown += f"\n{janus_table(rates)}"
    atomic_write_bytes(paths["md"], lambda s: s.write(markdown.encode()))
    plot_tally(table, key, paths["png"], source)
    return paths
