"""The Janus question of the preference study: answers decoded to methods through the key, one answer
per rater and asset, the rate with Wilson's score interval, and the tally's Janus table."""

from __future__ import annotations

import json
import math

import pytest

from dreamflow.study import preference

from .assets import make_asset


def test_wilson_interval_by_hand():
    """5 of 10: centre 0.5, half-width z sqrt(0.025 + z^2/400) / (1 + z^2/10) = 0.2634 (z = 1.96)."""
    low, high = preference.wilson_interval(5, 10)
    assert low == pytest.approx(0.5 - 0.2634, abs=1e-3) and high == pytest.approx(0.5 + 0.2634, abs=1e-3)
    low, high = preference.wilson_interval(0, 10)  # none: still an upper bound above 0
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-3)
    assert all(math.isnan(v) for v in preference.wilson_interval(0, 0))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    metrics = [make_asset(results, "janus", method, prompt, 0, 20.0 + (method == "apfo"))
               for prompt in ("an orange cone", "a red cube") for method in ("apfo", "sds", "vsd")]
    key = preference.build_study(metrics, results / "study", results / "key.json", "janus", seed=2)
    return results, key


def _answer(key, rater, janus_of):
    """Each pair's overall vote (a tie) and, for each side, the Janus answer janus_of(method)."""
    votes = []
    for pid, pair in key["pairs"].items():
        votes.append({"pair": pid, "question": "overall", "choice": "tie"})
        for side in ("left", "right"):
            votes.append({"pair": pid, "question": "janus", "side": side, "choice": janus_of(pair[side])})
    return {"study": key["study"], "rater": rater, "votes": votes}


def test_janus_rates_per_method_count_each_asset_once_per_rater(study, tmp_path):
    results, key = study
    assert key["janus"] == preference.JANUS_TEXT
    assert preference.JANUS_TEXT in (results / "study" / "index.html").read_text()
    # APFO's assets are in two pairs each (vs SDS, vs VSD): still one answer per rater and asset.
    answers = {"apfo": "no", "sds": "yes", "vsd": "unsure"}
    files = []
    for rater in ("A", "B"):
        files.append(tmp_path / f"votes-{rater}.json")
        files[-1].write_text(json.dumps(_answer(key, rater, answers.get)))
    janus = preference.read_janus(files, key)
    assert len(janus) == 2 * 6  # 2 raters x 6 assets
    rates = preference.janus_rates(janus).set_index("method")
    assert rates.loc["apfo", "no"] == 4 and rates.loc["apfo", "janus_pct"] == 0 and rates.loc["apfo", "assets"] == 2
    assert rates.loc["sds", "janus_pct"] == 100 and rates.loc["sds", "janus_low"] == pytest.approx(
        100 * preference.wilson_interval(4, 4)[0])
    assert math.isnan(rates.loc["vsd", "janus_pct"]) and rates.loc["vsd", "unsure"] == 4
    # The main question is tallied as before, the Janus answers beside it.
    paths = preference.write_tally(files, results / "key.json", tmp_path / "tally", resamples=100)
    assert paths["janus"].exists() and "Janus rate" in paths["md"].read_text()
    assert preference.read_votes(files, key)["question"].eq("overall").all()


def test_a_janus_answer_of_an_unknown_side_is_refused(study, tmp_path):
    _, key = study
    pid = next(iter(key["pairs"]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"study": key["study"], "votes": [{"pair": pid, "question": "janus", "side": "top",
                                                                 "choice": "yes"}]}))
    with pytest.raises(preference.StudyError, match="side"):
        preference.read_janus([bad], key)
