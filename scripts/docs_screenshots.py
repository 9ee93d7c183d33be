"""Screenshots for docs/images/ and the README, taken in headless Chromium as a person would see the pages:
a stage-3 .glb in the three.js viewer, the suite report's first screen at 1280 px, the preference
study page.

    python scripts/docs_screenshots.py --suite results/toy --study results/toy-compare
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamflow.report.viewer import standalone_page  # noqa: E402
from dreamflow.stages import FINAL_STAGE, STAGES  # noqa: E402
from tests.browser import chromium, wait_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=ROOT / "results" / "toy", help="a suite folder with report.html")
    parser.add_argument("--study", type=Path, default=ROOT / "results" / "toy-compare",
                        help="a suite folder with study/index.html")
    parser.add_argument("--glb-prompt", default="an-orange-cone", help="slug prefix of the asset shown in 3D")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.suite, args.study = args.suite.resolve(), args.study.resolve()
    args.out.mkdir(exist_ok=True)
    glb = next(args.suite.glob(f"*/*/{args.glb_prompt}*/seed*/{STAGES[FINAL_STAGE].path('mesh')}"))
    page = Path("/tmp") / "dreamflow_glb_view.html"
    page.write_text(standalone_page(glb, f"stage 3 .glb of “{glb.parents[2].name.rsplit('-', 1)[0].replace('-', ' ')}” in three.js", size=360))
    driver = chromium(1280, 800)
    try:
        driver.get(page.as_uri())
        wait_for(driver, "window.viewerResult")
        driver.set_window_size(420, 640)
        driver.save_screenshot(str(args.out / "screenshot_glb_viewer.png"))
        driver.set_window_size(1280, 800)
        driver.get((args.suite / "report.html").as_uri())
        time.sleep(1.0)
        driver.save_screenshot(str(args.out / "screenshot_report.png"))
        driver.get((args.study / "study" / "index.html").as_uri())
        time.sleep(1.0)
        driver.save_screenshot(str(args.out / "screenshot_study.png"))
    finally:
        driver.quit()
    print("wrote", *(args.out / n for n in ("screenshot_glb_viewer.png", "screenshot_report.png", "screenshot_study.png")))


if __name__ == "__main__":
    main()
