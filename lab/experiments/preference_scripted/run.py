"""A scripted preference study: raters that click through the real study page in headless Chromium,
each choosing by one of the toy world's ground-truth metrics, then the tally, beside the CLIP judge.

It exercises the whole human-study path (page, clicks, exported vote files, tally with intervals
and agreement) on a suite whose right answers are known, and asks whether the CLIP judge agrees
with the truth. The raters are scripts, not people: their table says what the truth prefers.

    python lab/experiments/preference_scripted/run.py --suite results/toy-compare
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from dreamflow.study.preference import write_tally  # noqa: E402
from tests.browser import chromium  # noqa: E402

HERE = Path(__file__).parent
# rater -> (stage-3 metric, True when higher is better, tie margin)
RATERS = {"truth-iou": ("stage3_iou", True, 0.01), "truth-colour": ("stage3_colour_error", False, 0.01)}


def choose(pair: dict, metric: str, higher: bool, margin: float) -> str:
    left, right = (json.loads((Path(pair[f"{side}_asset"]) / "metrics.json").read_text())[metric]
                   for side in ("left", "right"))
    if abs(left - right) <= margin:
        return "tie"
    return "left" if (left > right) == higher else "right"


def vote(study: Path, key: dict, rater: str, rule: tuple, downloads: Path) -> Path:
    """Click through the page as `rater` and export; returns the exported file."""
    downloads.mkdir(parents=True, exist_ok=True)
    driver = chromium(downloads=str(downloads))
    try:
        driver.get(study.resolve().as_uri())
        driver.execute_script("localStorage.clear()")
        driver.refresh()
        driver.find_element("id", "rater").send_keys(rater)
        for _ in key["pairs"]:
            pair = key["pairs"][driver.execute_script("return document.body.dataset.pair")]
            driver.find_element("id", f"choose-overall-{choose(pair, *rule)}").click()
        driver.find_element("id", "export").click()
        deadline = time.time() + 30
        while not list(downloads.glob(f"votes-*-{rater}.json")) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        driver.quit()
    return next(downloads.glob(f"votes-*-{rater}.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=ROOT / "results" / "toy-compare")
    args = parser.parse_args()
    key_path = args.suite / "study_key.json"
    key = json.loads(key_path.read_text())
    votes_dir = HERE / "votes"
    shutil.rmtree(votes_dir, ignore_errors=True)
    files = [vote(args.suite / "study" / "index.html", key, rater, rule, votes_dir / rater)
             for rater, rule in RATERS.items()]
    paths = write_tally(files, key_path, HERE / "tally")
    judge = args.suite / "preference_judge.md"
    report = [
        "# Scripted preference study on the toy comparison suite", "",
        "Two scripted raters clicked through `study/index.html` in headless Chromium (the page raters get), "
        "exported their votes, and `dreamflow preference tally` merged them. Each rater prefers the asset "
        "with the better stage-3 ground-truth metric: `truth-iou` the higher silhouette IoU, `truth-colour` the "
        "lower colour error (tie within 0.01). They are scripts, not people: the table says what the toy "
        "world's truth prefers, which a CLIP judge should agree with.", "",
        f"    python lab/experiments/preference_scripted/run.py --suite {args.suite.relative_to(ROOT) if args.suite.is_absolute() else args.suite}", "",
        "## Scripted raters (ground truth)", "", Path(paths["md"]).read_text().split("\n", 2)[2], "",
        "## The suite's CLIP judge on the same pairs (rule `preference_judge`)", "",
        judge.read_text().split("\n", 2)[2] if judge.exists() else "(not run)", ""]
    (HERE / "README.md").write_text("\n".join(report))
    print((HERE / "README.md").read_text())


if __name__ == "__main__":
    main()
