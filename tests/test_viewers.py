"""What a person sees, checked in a real browser (headless Chromium, three.js's GLTFLoader):
exported assets stand upright, textured and smoothly shaded; the suite report fits a 1280-px
window with every image loaded; the blind preference study records scripted clicks that the tally
counts back."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import trimesh

from dreamflow.report.viewer import BUNDLE, standalone_page

from .assets import make_asset, true_surface, write_true_glb
from .browser import chromium, console_messages, wait_for
from .conftest import ROOT

VALIDATOR = ROOT / "viewer" / "src" / "validate.mjs"


@pytest.fixture(scope="module")
def browser():
    if not BUNDLE.exists():
        pytest.skip(f"the 3D viewer is not built ({BUNDLE}): bash scripts/build_viewer.sh")
    driver = chromium()
    yield driver
    driver.quit()


def view_glb(browser, glb: Path) -> dict:
    page = glb.with_suffix(".html")
    page.write_text(standalone_page(glb, glb.stem))
    browser.get(page.as_uri())
    return wait_for(browser, "window.viewerResult")


def upright_cone(result: dict) -> bool:
    """A cone with its apex up: tallest along +Y and much narrower at the top than at the bottom."""
    extent = [hi - lo for lo, hi in zip(result["min"], result["max"])]
    return extent[1] >= 0.9 * max(extent) and result["radiusTop"] < 0.5 * result["radiusBottom"]


def test_exported_glb_stands_upright_textured_and_valid(browser, tmp_path):
    glb = write_true_glb("a red cone with blue stripes", tmp_path / "cone.glb")
    result = view_glb(browser, glb)
    errors = console_messages(browser, "SEVERE")
    assert "error" not in result and not errors, (result, errors)
    assert result["meshes"] == 1 and result["textured"] and result["normals"], result
    assert upright_cone(result), result
    # The same mesh written as the world stores it (Z-up) lies on its side: the check can fail.
    vertices, faces = true_surface("a red cone with blue stripes")
    z_up = tmp_path / "cone_z_up.glb"
    z_up.write_bytes(trimesh.Trimesh(vertices, faces).export(file_type="glb"))
    assert not upright_cone(view_glb(browser, z_up))
    # The Khronos glTF validator reports no error (its npm package comes with the viewer's build).
    node = shutil.which("node")
    if node is None or not (ROOT / "viewer" / "node_modules" / "gltf-validator").exists():
        pytest.skip("the Khronos validator needs node and bash scripts/build_viewer.sh")
    report = subprocess.run([node, str(VALIDATOR), str(glb)], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0 and json.loads(report.stdout)["numErrors"] == 0, report.stdout + report.stderr


def test_obj_is_written_in_the_glb_frame(tmp_path):
    from dreamflow.export.texture import bake_texture, load_textured, write_obj
    from dreamflow.toyworld.scenes import parse_toy_prompt

    vertices, faces = true_surface("an orange cone")
    scene = parse_toy_prompt("an orange cone")
    mesh = bake_texture(vertices, faces, lambda p: scene.albedo(p), 32)
    write_obj(mesh, tmp_path / "mesh.obj")
    write_true_glb("an orange cone", tmp_path / "mesh.glb", 32)
    obj = trimesh.load(tmp_path / "mesh.obj", process=False, force="mesh")
    glb = load_textured(tmp_path / "mesh.glb", frame="gltf")
    assert abs(obj.bounds - glb.bounds).max() < 1e-5
    assert abs(obj.bounds[:, 1] - mesh.bounds[:, 2]).max() < 1e-5  # the world's up (+Z) is the file's +Y
    assert abs(obj.bounds[:, 2] - mesh.bounds[:, 0]).max() < 1e-5  # the world's front (+X) is the file's +Z
    world = load_textured(tmp_path / "mesh.glb")
    assert abs(world.bounds - mesh.bounds).max() < 1e-5


@pytest.fixture(scope="module")
def compare_suite(tmp_path_factory):
    """A three-method suite of two prompts, one of them failed for SDS, summarised as the rule does."""
    from dreamflow.report.summary import summarize_suite

    results = tmp_path_factory.mktemp("results")
    metrics = []
    for prompt, base in (("an orange cone", 20.0), ("a blue sphere with yellow stripes", 25.0)):
        for method, offset in (("apfo", 2.0), ("sds", -1.0), ("vsd", 0.2)):
            status = "failed: stage2 at step 3: NaN" if (method, prompt) == ("sds", "an orange cone") else "ok"
            metrics.append(make_asset(results, "cmp", method, prompt, 0, base + offset, status))
    summarize_suite([str(m) for m in metrics], results / "cmp", "cmp")
    return results / "cmp", metrics


def test_report_fits_1280_px_with_every_image_and_a_working_3d_view(browser, compare_suite):
    folder, _ = compare_suite
    browser.get((folder / "report.html").as_uri())
    wait_for(browser, "document.readyState === 'complete' || null")
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth > 0])")
    assert images and all(ok for _, ok in images), [src for src, ok in images if not ok]
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    text = browser.find_element("tag name", "body").text
    assert "Silhouette IoU ↑" in text and "Pattern error ↓" in text and "failed_or_missing" not in text
    assert "DreamFlow (APFO)" in text and "failed: stage2 at step 3" in text
    browser.find_element("css selector", ".card[data-method='apfo'][data-prompt='an orange cone'] button").click()
    result = wait_for(browser, "window.viewerResult")
    assert result["textured"] and result["normals"] and upright_cone(result), result
    assert not console_messages(browser, "SEVERE")


def test_study_page_scripted_votes_tally_back(browser, compare_suite, tmp_path):
    from dreamflow.study.preference import build_study, write_tally

    folder, metrics = compare_suite
    key = build_study(metrics, tmp_path / "study", tmp_path / "study_key.json", "cmp", seed=3)
    # SDS failed on the cone: pairs are cone-vs-VSD and sphere-vs-SDS/VSD.
    assert sorted(p["baseline"] for p in key["pairs"].values()) == ["sds", "vsd", "vsd"]
    page = (tmp_path / "study" / "index.html").read_text()
    assets = sorted(p.name for p in (tmp_path / "study" / "assets").iterdir())
    assert not any(m in page or any(m in a for a in assets) for m in ("apfo", "sds", "vsd"))  # blind
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium(downloads=str(downloads))
    try:
        driver.get((tmp_path / "study" / "index.html").as_uri())
        driver.find_element("id", "rater").send_keys("tester")
        for number, _ in enumerate(key["pairs"]):  # DreamFlow's side against SDS; tie against VSD
            pair = key["pairs"][driver.execute_script("return document.body.dataset.pair")]
            # The optional Janus question, per asset: "no" for DreamFlow's, "yes" for the baseline's; on the
            # first pair a first answer is taken back by a second click on it.
            for asset_side in ("left", "right"):
                if number == 0:
                    driver.find_element("id", f"janus-{asset_side}-unsure").click()
                    driver.find_element("id", f"janus-{asset_side}-unsure").click()
                driver.find_element("id", f"janus-{asset_side}-{'no' if pair[asset_side] == 'apfo' else 'yes'}").click()
            side = "tie" if pair["baseline"] == "vsd" else ("left" if pair["left"] == "apfo" else "right")
            driver.find_element("id", f"choose-overall-{side}").click()
        assert driver.find_element("id", "progress-text").text == f"{len(key['pairs'])} of {len(key['pairs'])} answered"
        # The last pair shows its answers, and only those, as chosen: the main question's and two Janus ones.
        chosen = driver.execute_script("return [...document.querySelectorAll('.answers button.chosen')].map(b => b.id)")
        assert len(chosen) == 3 and sum(c.startswith("janus-") for c in chosen) == 2, chosen
        images = driver.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert images and not console_messages(driver, "SEVERE")
        driver.find_element("id", "export").click()
        deadline = time.time() + 30
        while not list(downloads.glob("votes-*.json")) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        driver.quit()
    votes = list(downloads.glob("votes-*.json"))
    assert votes and json.loads(votes[0].read_text())["rater"] == "tester"
    exported = json.loads(votes[0].read_text())["votes"]
    janus = [v for v in exported if v["question"] == "janus"]
    assert len(janus) == 2 * len(key["pairs"]) and {v["choice"] for v in janus} == {"yes", "no"}  # "unsure" taken back
    assert all(v["side"] in ("left", "right") for v in janus)
    paths = write_tally(votes, tmp_path / "study_key.json", tmp_path / "tally", resamples=200)
    import pandas as pd

    table = pd.read_csv(paths["csv"]).set_index("baseline")
    assert table.loc["sds", "win_pct"] == 100 and table.loc["sds", "votes"] == 1
    assert table.loc["vsd", "tie_pct"] == 100 and table.loc["vsd", "votes"] == 2
    assert "Votes from the study page: 1 rater(s) (tester)" in Path(paths["md"]).read_text()
    # Janus rates per method: DreamFlow's 2 assets (the sphere's is in two pairs, counted once) all "no".
    rates = pd.read_csv(paths["janus"]).set_index("method")
    assert rates.loc["apfo", "janus_pct"] == 0 and rates.loc["apfo", "assets"] == 2 and rates.loc["apfo", "no"] == 2
    assert rates.loc["vsd", "janus_pct"] == 100 and rates.loc["vsd", "yes"] == 2 and rates.loc["sds", "yes"] == 1
