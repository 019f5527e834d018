"""The diagnosis report: its files, its embedded timelines, atomic writing, the three commands that write it,
and the page in a real (headless) browser."""
import json
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from test_diagnose import CASE_GT, CASE_PRED, CASE_TYPES, annotations, pred_frame
from tsrnet.detect.diagnosis import report as report_mod
from tsrnet.detect.diagnosis.rules import diagnose_detections
from tsrnet.detect.diagnosis.charts import TYPE_COLOURS
from tsrnet.detect.diagnosis.report import OUTCOMES, write_report


def two_runs():
    """The hand-built case, and a second "method" with its wrong-label predictions deleted."""
    ann = annotations(CASE_GT)
    a = diagnose_detections(ann, pred_frame(CASE_PRED))
    b = diagnose_detections(ann, pred_frame([p for p, t in zip(CASE_PRED, CASE_TYPES) if t != "wrong_label"]))
    return ann, {"method a": a, "method b": b}


def embedded(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='timeline-data'>(.*?)</script>", page, re.S)
    return json.loads(m.group(1))


def test_report_files_and_timelines(tmp_path):
    ann, runs = two_runs()
    page = write_report(tmp_path / "rep", runs, ann, "two methods")
    files = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert files == ["diagnosis.json", "index.html", "run0-false-positives.png", "run0-sensitivity.png",
                     "run1-false-positives.png", "run1-sensitivity.png"]
    html = page.read_text()
    for f in files[2:]:
        assert f"src='{f}'" in html
        img = matplotlib.image.imread(tmp_path / "rep" / f)
        assert img.shape[0] > 200 and img[..., :3].std() > 0.05  # a drawn chart, not a blank canvas
    summaries = json.loads((tmp_path / "rep" / "diagnosis.json").read_text())
    assert list(summaries) == ["method a", "method b"]
    assert summaries["method b"]["false_positives"]["wrong_label"] == 0
    data = embedded(html)
    assert data["methods"] == ["method a", "method b"] and data["classes"] == ["A", "B"]
    v1 = next(v for v in data["videos"] if v["id"] == "v1")
    assert len(v1["gt"]) == 3 and v1["duration"] == 100.0
    # Method a's predictions on v1 with their outcomes, as the hand-built case says.
    want = sorted((c, s, t) for (v, c, s, _, _), t in zip(CASE_PRED, CASE_TYPES) if v == "v1")
    got = sorted((data["classes"][p[1]], p[2], OUTCOMES[p[5]]) for p in v1["pred"] if p[0] == 0)
    assert got == want
    # The case's four true positives take all four instances, for both methods.
    assert all(g[3] == [1, 1] for v in data["videos"] for g in v["gt"])


def test_report_is_all_or_nothing(tmp_path, monkeypatch):
    ann, runs = two_runs()

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_mod, "plot_sensitivity", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path / "out" / "rep", runs, ann)
    assert not (tmp_path / "out").exists()


def test_text_in_the_page_is_escaped(tmp_path):
    ann, runs = two_runs()
    page = write_report(tmp_path / "rep", {"<b>x</b></script>": runs["method a"]}, ann).read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert embedded(page)["methods"] == ["<b>x</b></script>"]


def test_compare_methods_detect_and_diagnose_agree(tiny, tmp_path):
    """compare-methods --diagnose (two runs side by side), detect --diagnose on one of the runs and the diagnose
    command on the detections detect wrote: one diagnosis."""
    from tsrnet.detect.cli import detect
    from tsrnet.detect.diagnose_cli import diagnose
    from tsrnet.train.cli import compare_methods

    out = tmp_path / "cmp"
    r = CliRunner().invoke(compare_methods, [
        str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]), "--subset", "train", "--test-subset",
        "test", "--models", "two-stream,srnet", "--steps", "12", "--quiet", "--out", str(out),
        "--diagnose", str(tmp_path / "rep")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    both = json.loads((tmp_path / "rep" / "diagnosis.json").read_text())
    assert list(both) == ["two-stream", "srnet"]
    assert embedded((tmp_path / "rep" / "index.html").read_text())["methods"] == ["two-stream", "srnet"]
    r = CliRunner().invoke(detect, ["--run", str(out / "srnet"), "--quiet", "--diagnose", str(tmp_path / "rep2")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    one = json.loads((tmp_path / "rep2" / "diagnosis.json").read_text())
    assert one == {"srnet": both["srnet"]}
    r = CliRunner().invoke(diagnose, [str(tiny["annotations"]), str(out / "srnet" / "detections.json"), "--subset",
                                      "test", "--json", str(tmp_path / "d.json")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d.json").read_text()) == both["srnet"]
    s = both["srnet"]
    assert s["true_positives"] + sum(s["false_positives"].values()) == s["predictions"] > 0


def test_detect_diagnose_needs_segments(tiny, tmp_path):
    from tsrnet.detect.cli import detect
    from tsrnet.train.cli import train_tsr

    r = CliRunner().invoke(train_tsr, [str(tiny["untrimmed"]), "--annotations", str(tiny["annotations"]),
                                       "--subset", "train", "--model", "two-stream", "--steps", "4", "--quiet",
                                       "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    labels_only = tmp_path / "labels.csv"
    labels_only.write_text("video,label,subset\n" + "".join(
        f"{v},{a['labels'][0] if a['labels'] else ''},test\n" for v, a in _test_labels(tiny).items()))
    r = CliRunner().invoke(detect, ["--run", str(tmp_path / "run"), "--annotations", str(labels_only), "--quiet",
                                    "--diagnose", str(tmp_path / "rep")])
    assert r.exit_code == 2 and "--diagnose needs ground truth with segments" in r.output
    assert not (tmp_path / "rep").exists() and not (tmp_path / "run" / "detections.json").exists()


def _test_labels(tiny):
    db = json.loads(open(tiny["annotations"]).read())["database"]
    return {v: {"labels": sorted({a["label"] for a in e["annotations"]})} for v, e in db.items()
            if e.get("subset") == "test"}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1280,2400"]


def browse(page, tmp_path, *extra):
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    profile.mkdir()
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_opens_in_a_browser(tmp_path):
    """The page's own status line says every chart decoded and every timeline was drawn; the console is silent
    (a script error would print there); the screenshot shows the outcome colours of charts and timelines."""
    ann, runs = two_runs()
    page = write_report(tmp_path / "rep", runs, ann)
    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    status = re.search(r'<p id="status" data-ok="(\d)">([^<]*)<', dom.stdout)
    assert status, dom.stdout[:500]
    assert status.group(1) == "1" and status.group(2) == "charts 4/4 loaded, 3 timelines drawn"
    assert dom.stdout.count("<svg") == 3  # one timeline per video
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    shot = tmp_path / "shot.png"
    r = browse(page, tmp_path, f"--screenshot={shot}")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for t in ("true_positive", "wrong_label", "background"):
        rgb = np.array([int(TYPE_COLOURS[t][i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).max(axis=1) <= 2).sum() > 200, t  # whole bars of that colour, not a speck


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_a_broken_chart_is_reported_by_the_page(tmp_path):
    """The status line can fail: a chart that does not decode turns it to data-ok 0."""
    ann, runs = two_runs()
    page = write_report(tmp_path / "rep", runs, ann)
    (tmp_path / "rep" / "run1-sensitivity.png").write_bytes(b"not a png")
    dom = browse(page, tmp_path, "--dump-dom")
    assert '<p id="status" data-ok="0">charts 3/4 loaded, 3 timelines drawn<' in dom.stdout
