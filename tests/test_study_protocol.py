"""The defaults study's protocol (benchmarks/study_defaults.py): its leave-one-family-out choice on a hand-worked
table, the localisation per annotation structure, and rows kept by settings digest."""
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import study_defaults as sd  # noqa: E402


def tune_table(scores: dict) -> pd.DataFrame:
    return pd.DataFrame([{"family": f, "method": "m", "candidate": k, "localise": "default", sd.METRIC: v}
                         for f, per in scores.items() for k, v in enumerate(per)])


def test_choice_is_the_best_mean_rank_among_settings_that_never_collapse():
    # Validation scores of candidates 0, 1, 2 on three families. Worked by hand: a setting collapses on a
    # family below half the best there (A: 0.10 < 0.30; C: 0.05 < 0.175).
    tune = tune_table({"A": [0.50, 0.60, 0.10], "B": [0.40, 0.42, 0.45], "C": [0.30, 0.05, 0.35]})
    fams = ["A", "B", "C"]
    # Over every family only candidate 0 never collapses, though candidate 2 wins B and C.
    assert sd.choose(tune, "m", fams) == (0, "default")
    # Without C: candidate 2 collapses on A; ranks on A and B: c0 (2, 3), c1 (1, 2) -> candidate 1.
    assert sd.choose(tune, "m", ["A", "B"]) == (1, "default")
    # Without A: candidate 1 collapses on C; c0 (3, 2), c2 (1, 1) -> candidate 2.
    assert sd.choose(tune, "m", ["B", "C"]) == (2, "default")
    choices = sd.stage_select(tune, fams, ["m"])["m"]
    assert choices == {"all": (0, "default"), "A": (2, "default"), "B": (0, "default"), "C": (1, "default")}


def test_activitynet_families_are_localised_with_the_median_filter():
    anet, thumos = sd.variants("anet-drift"), sd.variants("th14-weak")
    assert set(anet) == set(thumos) == set(sd.LOCALISE)
    assert all(v["smooth"] == sd.SMOOTH_BY_LAYOUT["activitynet13"] for v in anet.values())
    assert thumos["default"] is None and all("smooth" not in (v or {}) for v in thumos.values())
    assert anet["min-max 0.5"] == {"scale": "video", "threshold": [0.5], "smooth": 8.0}


def test_scored_rows_are_reused_by_settings_and_redone_when_they_change(tmp_path):
    csv = tmp_path / "final.csv"
    cfg, var = sd.config("two-stream", 0, 0), sd.variants("th14-weak")
    key = {"family": "th14-weak", "seed": 0, "method": "two-stream", "candidate": 0}
    rows = [{**key, "settings": sd.digest(cfg, var), "localise": n, sd.METRIC: 0.3} for n in var]
    pd.DataFrame(rows).to_csv(csv, index=False)
    job = (cfg, None, tmp_path / "absent-run", key, var)
    assert sd.still_to_train([job], csv) == []  # scored: no run folder needed
    got = sd.scored(csv, key, cfg, tmp_path / "absent-run", None, None, "test", var)
    assert [r[sd.METRIC] for r in got] == pytest.approx([0.3] * len(var))
    changed = sd.config("two-stream", 1, 0)  # another candidate's settings: another digest
    assert sd.digest(changed, var) != sd.digest(cfg, var)
    assert sd.still_to_train([(changed, None, tmp_path / "r", key, var)], csv) != []
    other_localisation = sd.variants("anet-drift")
    assert sd.still_to_train([(cfg, None, tmp_path / "r", key, other_localisation)], csv) != []
    # A changed detection default of the method (its "default" variant) is another digest: rescored.
    import dataclasses
    new_default = dataclasses.replace(cfg, detect=dataclasses.replace(cfg.detect, attention_weight=0.5))
    assert sd.still_to_train([(new_default, None, tmp_path / "r", key, var)], csv) != []


def test_a_tie_goes_to_the_defaults():
    # Two-Stream has no attention: its "attention-weighted" rows equal its default ones, and the name sorts first.
    rows = [{"family": f, "method": "m", "candidate": k, "localise": loc, sd.METRIC: v}
            for f in ("A", "B") for k, v in ((0, 0.5), (1, 0.4))
            for loc in ("default", "attention-weighted")]
    assert sd.choose(pd.DataFrame(rows), "m", ["A", "B"]) == (0, "default")


def test_a_setting_must_lead_by_more_than_the_margin_to_displace_the_defaults():
    # Candidate 1 leads the default by half a point on both families: within the margin, ranks tie (1, 1), and
    # the tie goes to the defaults. Leading by two points on both, it ranks 1 against the default's 2.
    near = tune_table({"A": [0.500, 0.505], "B": [0.400, 0.405]})
    assert sd.MARGIN == pytest.approx(0.01)
    assert sd.choose(near, "m", ["A", "B"]) == (0, "default")
    far = tune_table({"A": [0.50, 0.52], "B": [0.40, 0.42]})
    assert sd.choose(far, "m", ["A", "B"]) == (1, "default")
    # Worked by hand, three settings on A: 0.50 and 0.505 each have 0.52 more than a point above them (rank 2);
    # 0.52 has none (rank 1).
    three = tune_table({"A": [0.50, 0.505, 0.52]})
    assert sd.choose(three, "m", ["A"]) == (2, "default")
    split = tune_table({"A": [0.50, 0.52], "B": [0.42, 0.40]})  # one family each: ranks (1.5, 1.5): defaults
    assert sd.choose(split, "m", ["A", "B"]) == (0, "default")


def test_final_stage_judges_each_family_with_the_choice_made_without_it():
    # Families A, B, C tuned; D never tuned, so it is held out already. Worked by hand: candidate 1 is the best
    # on every family and candidate 2 collapses on A and C (below half the best there).
    tune = tune_table({"A": [0.50, 0.60, 0.10], "B": [0.40, 0.45, 0.42], "C": [0.30, 0.35, 0.05]})
    assert sd.tuned_families(tune) == ["A", "B", "C"]
    choices = sd.stage_select(tune, sd.tuned_families(tune), ["m"])
    # Over A, B, C: ranks (1 + settings more than a point above) c0 (2, 3, 2), c1 (1, 1, 1) -> candidate 1.
    assert choices["m"]["all"] == (1, "default")
    assert sd.held_out_choice(choices, "m", "D") == (1, "default")  # the choice made on A, B and C
    assert sd.held_out_choice(choices, "m", "A") == choices["m"]["A"] == (1, "default")  # on B and C
    assert sd.held_out_choice({"m": {"all": None}}, "m", "D") == (0, "default")  # nothing tuned: defaults
    presets = sd.tuned_families(tune_table({"anet-drift": [0.1], "th14-weak": [0.2]}))
    assert presets == ["th14-weak", "anet-drift"]  # the presets' order, as the tables


def final_rows(scores: dict, pick, seeds=range(3)) -> list[dict]:
    """Rows of final.csv: per method and family, the defaults' and the choice's test score (%), on every seed."""
    return [{"family": f, "seed": s, "method": m, "candidate": k, "localise": loc, sd.METRIC: v / 100}
            for m, per in scores.items() for f, (d, c) in per.items() for s in seeds
            for k, loc, v in [(0, "default", d), (*pick, c)]]


def test_adoption_rule_weighs_the_mean_the_worst_family_and_mean_pooling():
    # Test scores (%) of the defaults (c0) and of the choice (c1 with the attention weighting), the same on
    # seeds 0-2; verdicts worked by hand from the rule in adoption's docstring.
    scores = {  # method: {family: (defaults, choice)}
        "two-stream": {"A": (10, 12), "B": (20, 22)},  # mean 15 -> 17, worst 10 -> 12: adopt (the reference)
        "m1": {"A": (30, 40), "B": (21, 19)},  # mean up, worst 21 -> 19 (more than a point): keep
        "m3": {"A": (5, 9), "B": (23, 21.5)},  # mean and worst up, but B: 21.5 < pooling 22 <= 23: keep
        "m5": {"A": (30, 40), "B": (21, 20)},  # mean up, worst exactly a point down, above pooling: adopt
        "m6": {"A": (30, 29), "B": (25, 25.5)},  # worst level, mean down (27.5 -> 27.25): keep
        "m7": {"A": (30, 31), "B": (25, 24)},  # equal means, worst a point down: adopt
        "m4": {"A": (30, 30), "B": (20, 20)},  # chose its defaults: nothing to adopt
    }
    pick = (1, "attention-weighted")
    rows = final_rows(scores, pick)
    # An earlier row of a key, superseded by the last one (no digest in these rows): not counted.
    rows.insert(0, {"family": "A", "seed": 0, "method": "m5", "candidate": 0, "localise": "default", sd.METRIC: 0.9})
    choices = {m: {"all": pick, "A": pick, "B": pick} for m in scores}
    choices["m4"] = {"all": (0, "default"), "A": pick, "B": pick}  # the default it would become: its own
    got = sd.adoption(sd.current(pd.DataFrame(rows)), choices, list(scores))
    assert got.verdict.to_dict() == {"two-stream": "adopt", "m1": "keep the defaults", "m3": "keep the defaults",
                                     "m5": "adopt", "m6": "keep the defaults", "m7": "adopt", "m4": "defaults"}
    assert got.loc["m3", "below mean pooling"] == "B" and got.loc["m1", "below mean pooling"] == ""
    assert got.loc["m5", "defaults"] == pytest.approx(25.5) and got.loc["m5", "choice worst"] == pytest.approx(20)
    # Asked for m3 alone, it is still judged against Two-Stream.
    assert sd.adoption(sd.current(pd.DataFrame(rows)), choices, ["m3"]).verdict.to_dict() == \
        {"m3": "keep the defaults"}
    # Two-Stream kept (its choice below on A): the reference is its defaults, 10 and 20; m3's 21.5 on B is above.
    kept = {**scores, "two-stream": {"A": (10, 8), "B": (20, 22)}}
    got = sd.adoption(pd.DataFrame(final_rows(kept, pick)), choices, list(kept))
    assert got.loc["two-stream", "verdict"] == "keep the defaults" and got.loc["m3", "verdict"] == "adopt"
    # A family short of a seed on either side, or of Two-Stream's, is left out of the comparison.
    short = [r for r in final_rows(scores, pick) if not (r["family"] == "B" and r["seed"] == 2
                                                         and r["method"] == "two-stream" and r["candidate"] == 1)]
    assert (sd.adoption(pd.DataFrame(short), choices, list(scores)).families == 1).all()
    # Seeds other than those asked for do not stand in for a missing one.
    other = [r for r in final_rows(scores, pick) if r["seed"] != 2] + final_rows(scores, pick, seeds=[5])
    assert sd.adoption(pd.DataFrame(other), choices, list(scores)).empty
    with pytest.raises(ValueError, match="Two-Stream"):
        sd.adoption(pd.DataFrame(rows), {"m1": choices["m1"]}, ["m1"])


def test_rows_count_by_todays_settings_digest_not_by_their_order():
    # A setting scored (A), changed (B) and changed back (A): the cache finds A's rows, B's come later.
    key = {"family": "th14-weak", "seed": 0, "method": "two-stream", "candidate": 0, "localise": "default"}
    today = sd.digest(sd.config("two-stream", 0, 0), sd.variants("th14-weak"))
    rows = pd.DataFrame([{**key, "settings": today, sd.METRIC: 0.3}, {**key, "settings": "b-digest", sd.METRIC: 0.7}])
    assert sd.current(rows)[sd.METRIC].tolist() == [0.3]
    tune = rows.drop(columns="seed")  # the tuning stage's rows: training seed 0, no seed column
    assert sd.current(tune, seeded=False)[sd.METRIC].tolist() == [0.3]


def test_adoption_leaves_families_at_the_random_floor_out_of_the_worst_family():
    # m8's defaults score 1.6 on A, within FLOOR_MARGIN (2) of random scores' 0.67 there: A is at its floor.
    scores = {"two-stream": {"A": (10, 12), "B": (20, 22)}, "m8": {"A": (1.6, 0.1), "B": (30, 35)}}
    pick = (1, "attention-weighted")
    choices = {m: {"all": pick, "A": pick, "B": pick} for m in scores}
    rows = pd.DataFrame(final_rows(scores, pick))
    # Without the floor: worst family 1.6 -> 0.1, more than a point down: kept.
    assert sd.adoption(rows, choices, ["m8"]).loc["m8", "verdict"] == "keep the defaults"
    floor = pd.Series({"A": 0.67, "B": 0.67})
    got = sd.adoption(rows, choices, ["m8"], floor=floor).loc["m8"]
    # With it: the worst family is B (30 -> 35); the mean (15.8 -> 17.55) still counts A.
    assert got.verdict == "adopt" and got["at the floor"] == 1 and got["choice worst"] == pytest.approx(35)
    assert got.choice == pytest.approx(17.55)
