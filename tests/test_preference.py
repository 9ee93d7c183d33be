"""The preference study's bookkeeping: sides drawn from the recorded seed, votes decoded through the
key, win/tie/lose shares with bootstrap intervals, rater agreement and the CLIP judge."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dreamflow.study import preference

from .assets import make_asset


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    prompts = ["an orange cone", "a red cube", "a green torus", "a blue sphere", "a yellow cylinder", "a purple cone"]
    metrics = [make_asset(results, "pref", method, prompt, 0, 20.0 + 3 * (method == "apfo") + i % 2)
               for i, prompt in enumerate(prompts) for method in ("apfo", "sds")]
    return results, metrics


def test_sides_are_random_and_reproducible_from_the_seed(suite, tmp_path):
    _, metrics = suite
    first = preference.build_study(metrics, tmp_path / "a", tmp_path / "a.json", "pref", seed=7)
    again = preference.build_study(metrics, tmp_path / "b", tmp_path / "b.json", "pref", seed=7)
    left = {pid: pair["left"] for pid, pair in first["pairs"].items()}
    assert left == {pid: pair["left"] for pid, pair in again["pairs"].items()}
    assert set(left.values()) == {"apfo", "sds"} and first["side_seed"] == 7


def _votes(key, rater, choose):
    return {"study": key["study"], "rater": rater,
            "votes": [{"pair": pid, "question": "overall", "choice": choose(pid, pair)} for pid, pair in key["pairs"].items()]}


def test_tally_decodes_sides_and_measures_agreement(suite, tmp_path):
    _, metrics = suite
    key = preference.build_study(metrics, tmp_path / "s", tmp_path / "key.json", "pref", seed=1)
    ours = lambda pid, pair: "left" if pair["left"] == "apfo" else "right"  # noqa: E731
    pids = sorted(key["pairs"])
    # Rater A always picks DreamFlow; rater B picks it on the first four pairs, ties the rest.
    a = _votes(key, "A", ours)
    b = _votes(key, "B", lambda pid, pair: ours(pid, pair) if pid in pids[:4] else "tie")
    files = []
    for data in (a, b):
        files.append(tmp_path / f"votes-{data['rater']}.json")
        files[-1].write_text(json.dumps(data))
    votes = preference.read_votes(files, key)
    table = preference.tally(votes, key, resamples=500).iloc[0]
    assert table["votes"] == 12 and table["pairs"] == 6 and table["raters"] == 2
    assert table["win_pct"] == pytest.approx(100 * 10 / 12) and table["tie_pct"] == pytest.approx(100 * 2 / 12)
    assert table["lose_pct"] == 0 and table["win_low"] <= table["win_pct"] <= table["win_high"] == 100
    assert table["agreement_pct"] == pytest.approx(100 * 4 / 6)
    assert votes["choice"].isin(["left", "right"]).sum() == 10 and -1 <= table["krippendorff_alpha"] < 1


def test_krippendorff_alpha_by_hand():
    """Units of two ratings: (L, L), (L, L), (L, T), (R, R). Coincidences o_LL = 4, o_LT = o_TL = 1,
    o_RR = 2; n = 8, n_L = 5, n_T = 1, n_R = 2: alpha = 1 - (n - 1) * 2 / (n^2 - 25 - 1 - 4) = 1 - 14 / 34."""
    votes = pd.DataFrame({"pair": ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"], "question": "q",
                          "choice": ["left", "left", "left", "left", "left", "tie", "right", "right"]})
    assert preference.krippendorff_alpha(votes) == pytest.approx(1 - 14 / 34)


def test_krippendorff_alpha_limits():
    same = pd.DataFrame({"pair": ["p1", "p1", "p2", "p2"], "question": "q", "choice": ["left", "left", "tie", "tie"]})
    assert preference.krippendorff_alpha(same) == 1.0
    single = pd.DataFrame({"pair": ["p1"], "question": "q", "choice": ["left"]})
    assert math.isnan(preference.krippendorff_alpha(single))


def test_votes_of_another_study_are_refused(suite, tmp_path):
    _, metrics = suite
    key = preference.build_study(metrics, tmp_path / "s", tmp_path / "key.json", "pref")
    wrong = tmp_path / "votes.json"
    wrong.write_text(json.dumps({"study": "other", "votes": []}))
    with pytest.raises(preference.StudyError, match="study_key.json"):
        preference.read_votes([wrong], key)


def test_clip_judge_votes_with_a_tie_margin(suite, tmp_path):
    _, metrics = suite
    key = preference.build_study(metrics, tmp_path / "s", tmp_path / "key.json", "pref")
    # apfo scores 23 or 24, sds 20 or 21 on the same prompt: DreamFlow wins by 3 points everywhere.
    wins = preference.judge_votes(key, margin=0.5)
    decoded = preference.read_votes([_write(tmp_path / "j1.json", wins)], key)
    assert (decoded["outcome"] == "win").all() and wins["automatic"]
    ties = preference.judge_votes(key, margin=5.0)
    assert all(v["choice"] == "tie" for v in ties["votes"])
    paths = preference.write_tally([tmp_path / "j1.json"], tmp_path / "key.json", tmp_path / "judge", resamples=100)
    assert "Automatic judge, not human votes" in paths["md"].read_text()


def test_study_needs_the_reference_and_a_baseline(suite, tmp_path):
    _, metrics = suite
    only_sds = [m for m in metrics if "/sds/" in str(m)]
    with pytest.raises(preference.StudyError, match="reference method"):
        preference.build_study(only_sds, tmp_path / "s", tmp_path / "k.json", "pref")


def _write(path, data):
    path.write_text(json.dumps(data))
    return path
