"""The viewer (``detect --view DIR``): its data against the detections it was given, the copies and transcodes of
``--view-copy``, and the page in a real browser (Debian's chromium driven by chromedriver through selenium):
the console stays empty, the video plays, a click on a detection seeks the video to its start, ``n`` / ``p`` step
through the detections, the class filter narrows the list, and the drawn intervals are those of the JSON."""
import json
import re
import shutil

import matplotlib.image
import numpy as np
import pytest

from test_diagnose import annotations
from tsrnet.data.core.errors import DataError
from tsrnet.data.generators.videos import moving_texture, write_video
from tsrnet.detect.localize import VideoScores
from tsrnet.detect.viewer import probe, transcode_h264, write_viewer

CLASSES = ["HighJump", "LongJump", "Diving"]
FPS = 10.0


def scores(video_id, duration, rows_per_second=2.0, peaks=()):
    """A method's output by hand: attention and class probabilities high over ``peaks`` ([(start, end, class)])."""
    t = (np.arange(int(duration * rows_per_second)) + 0.5) / rows_per_second
    att, prob = np.full(len(t), 0.1), np.full((len(t), len(CLASSES)), 0.05)
    for a, b, c in peaks:
        inside = (t >= a) & (t <= b)
        att[inside], prob[inside, CLASSES.index(c)] = 0.9, 0.95
    rows = {s: {"attention": att * (1.0 if s == "rgb" else 0.5), "class_prob": prob} for s in ("rgb", "flow")}
    vp = prob.max(axis=0)
    return VideoScores(video_id, t, duration, rows, {"rgb": vp, "flow": vp})


def det(label, a, b, score):
    return {"label": label, "segment": [a, b], "score": score}


CASE = {  # video -> (duration, detections, ground truth)
    "v_jump": (8.0, [det("HighJump", 1.0, 3.0, 0.9), det("HighJump", 5.0, 6.5, 0.4), det("LongJump", 4.0, 7.0, 0.6)],
               [("HighJump", 1.2, 3.1), ("LongJump", 4.5, 7.0)]),
    "v_dive": (6.0, [det("Diving", 2.0, 4.0, 0.8)], [("Diving", 2.0, 4.5)]),
}


@pytest.fixture
def case(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    files = {}
    for i, (v, (dur, dets, _)) in enumerate(CASE.items()):
        frames = moving_texture(int(dur * FPS), 48, 64, seed=i)
        # One the browser plays (H.264 in MP4) and one it does not (MPEG-4 Part 2, as the demo's generator writes).
        files[v] = write_video(vids / f"{v}.mp4", frames, fps=FPS, codec="libx264" if i == 0 else "mpeg4")
    sc = [scores(v, dur, peaks=[(d["segment"][0], d["segment"][1], d["label"]) for d in dets])
          for v, (dur, dets, _) in CASE.items()]
    results = {v: dets for v, (_, dets, _) in CASE.items()}
    ann = annotations({v: (dur, gt) for v, (dur, _, gt) in CASE.items()})
    return {"scores": sc, "results": results, "ann": ann, "files": files, "tmp": tmp_path,
            "videos": {v: probe(p) for v, p in files.items()}}


def page_data(page):
    raw = re.search(r"<script type='application/json' id='view-data'>(.*?)</script>", page.read_text(), re.S)
    return json.loads(raw.group(1))


def test_the_page_holds_the_detections_and_truth_it_was_given(case):
    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], case["ann"], case["videos"])
    data = page_data(page)
    assert [v["id"] for v in data["videos"]] == list(CASE)
    for v in data["videos"]:
        dur, dets, gt = CASE[v["id"]]
        assert v["det"] == sorted([[d["label"], *d["segment"], d["score"]] for d in dets], key=lambda d: d[1])
        assert v["gt"] == [list(g) for g in gt]
        assert v["duration"] == dur
        # Relative to the page, so that the folder and its videos can move together.
        assert v["src"] == f"../videos/{v['id']}.mp4"
        # The curves are the fused weighted score of Eqs. (10)-(11), θ ĝ_rgb p + (1 − θ) ĝ_flow p with ĝ = g / max g;
        # here both streams' ĝ are equal, so it is ĝ p whatever θ.
        vs = next(s for s in case["scores"] if s.video_id == v["id"])
        g = vs.rows["rgb"]["attention"] / vs.rows["rgb"]["attention"].max()
        for c, curve in zip(v["classes"], v["curves"]):
            np.testing.assert_allclose(curve, g * vs.rows["rgb"]["class_prob"][:, CLASSES.index(c)], atol=5e-4)
        assert v["times"] == vs.times.tolist()
        assert np.allclose(v["attention"]["rgb"], v["attention"]["flow"])  # each divided by its maximum
    # v_dive is MPEG-4 Part 2, which browsers do not play: the page says so and what to do.
    dive = data["videos"][1]
    assert "mpeg4" in dive["note"] and "--view-copy" in dive["note"]
    assert data["videos"][0]["note"] == ""


def test_view_copy_copies_what_plays_and_transcodes_the_rest(case):
    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], case["ann"], case["videos"],
                        copy=True)
    data = page_data(page)
    jump, dive = (page.parent / v["src"] for v in data["videos"])
    assert jump.read_bytes() == case["files"]["v_jump"].read_bytes()
    f = probe(dive)
    assert f.codec == "h264" and f.playable and data["videos"][1]["note"] == ""
    import av

    # The transcode keeps every frame at its time.
    with av.open(str(dive)) as a, av.open(str(case["files"]["v_dive"])) as b:
        ta = [float(fr.time) for fr in a.decode(video=0)]
        tb = [float(fr.time) for fr in b.decode(video=0)]
    assert len(ta) == len(tb) == int(CASE["v_dive"][0] * FPS)
    assert np.allclose(ta, tb, atol=1e-3)


def test_a_second_viewer_into_the_same_folder_replaces_the_first(case):
    # As detect --view-copy does when run again (the demo's rerun): the videos/ subfolder exists already.
    view = case["tmp"] / "view"
    write_viewer(view, case["scores"], CLASSES, case["results"], case["ann"], case["videos"], copy=True)
    changed = {**case["results"], "v_dive": [det("Diving", 1.0, 2.0, 0.5)]}
    page = write_viewer(view, case["scores"], CLASSES, changed, case["ann"], case["videos"], copy=True)
    assert page_data(page)["videos"][1]["det"] == [["Diving", 1.0, 2.0, 0.5]]
    assert sorted(p.name for p in (view / "videos").iterdir()) == ["v_dive.mp4", "v_jump.mp4"]
    assert [p.name for p in case["tmp"].iterdir() if p.name.startswith(".")] == []  # no stage left behind


def test_a_video_without_a_file_is_drawn_with_a_note(case):
    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], None, {})
    v = page_data(page)["videos"][0]
    assert v["src"] is None and "no video file" in v["note"] and v["gt"] == []


def test_an_unreadable_video_is_refused_when_transcoded(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video")
    with pytest.raises(DataError, match="bad.avi"):
        transcode_h264(bad, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_a_failed_write_leaves_no_page(case, monkeypatch):
    from tsrnet.detect import viewer

    def broken(*a, **k):
        raise DataError("boom")

    monkeypatch.setattr(viewer, "transcode_h264", broken)
    with pytest.raises(DataError):
        write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], None, case["videos"], copy=True)
    assert not (case["tmp"] / "view").exists()


# -- in a real browser --------------------------------------------------------------------------------------------
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
except ImportError:
    selenium = None
browser_test = pytest.mark.skipif(CHROMIUM is None or DRIVER is None or selenium is None,
                                  reason="needs Debian's chromium and chromium-driver, and selenium")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        o.add_argument(flag)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.set_script_timeout(20)
    yield d
    d.quit()


def wait(d, script, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


@browser_test
def test_the_page_plays_the_video_and_a_click_seeks_it(case, browser):
    from selenium.webdriver.common.by import By

    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], case["ann"], case["videos"],
                        copy=True)
    d = browser
    d.get(page.as_uri())
    wait(d, "return document.getElementById('status').dataset.ok === '1'")
    wait(d, "return document.getElementById('video').readyState >= 1")
    assert abs(d.execute_script("return document.getElementById('video').duration") - CASE["v_jump"][0]) < 0.2
    assert "v_jump: 3 detections drawn, video ready" in d.find_element(By.ID, "status").text

    # The intervals drawn are those of the JSON, in seconds.
    drawn = d.execute_script("""return Array.from(document.querySelectorAll('#tl rect.iv.det')).map(
        r => [r.dataset.label, +r.dataset.start, +r.dataset.end, +r.dataset.score])""")
    want = [[x["label"], *x["segment"], x["score"]] for x in CASE["v_jump"][1]]
    assert sorted(drawn) == sorted(want)
    truth = d.execute_script("""return Array.from(document.querySelectorAll('#tl rect.iv.gt')).map(
        r => [r.dataset.label, +r.dataset.start, +r.dataset.end])""")
    assert sorted(truth) == sorted(list(g) for g in CASE["v_jump"][2])

    # A click on the LongJump detection seeks the video to its start; the cursor stands there.
    rect = d.find_element(By.CSS_SELECTOR, "#tl rect.iv.det[data-label='LongJump']")
    rect.click()
    wait(d, "return Math.abs(document.getElementById('video').currentTime - 4.0) < 1e-3")
    x_cursor = float(d.find_element(By.ID, "cursor").get_attribute("x1"))
    assert abs(x_cursor - float(rect.get_attribute("x"))) < 0.5

    # n and p step through the detections by start time: 1.0, 4.0, 5.0.
    body = d.find_element(By.TAG_NAME, "body")
    body.send_keys("n")
    wait(d, "return Math.abs(document.getElementById('video').currentTime - 5.0) < 1e-3")
    body.send_keys("p")
    body.send_keys("p")
    wait(d, "return Math.abs(document.getElementById('video').currentTime - 1.0) < 1e-3")

    # Playing moves the cursor with the video.
    d.execute_script("document.getElementById('video').play()")
    wait(d, "return document.getElementById('video').currentTime > 1.5")
    d.execute_script("document.getElementById('video').pause()")
    t = d.execute_script("return document.getElementById('video').currentTime")
    x_cursor = float(d.find_element(By.ID, "cursor").get_attribute("x1"))
    x0, w = 130, 900  # the timeline's left margin and width (viewer.js)
    assert abs(x_cursor - (x0 + w * t / CASE["v_jump"][0])) < 2.0

    # A row of the table seeks too; the filter by class narrows the list of videos.
    d.find_element(By.CSS_SELECTOR, "#dets tbody tr:nth-child(3)").click()
    wait(d, "return Math.abs(document.getElementById('video').currentTime - 5.0) < 1e-3")
    from selenium.webdriver.support.ui import Select

    Select(d.find_element(By.ID, "f-class")).select_by_value("Diving")
    assert [li.get_attribute("data-id") for li in d.find_elements(By.CSS_SELECTOR, "#list li")] == ["v_dive"]
    d.find_element(By.CSS_SELECTOR, "#list li").click()
    wait(d, "return document.getElementById('name').textContent === 'v_dive'")
    wait(d, "return document.getElementById('video').readyState >= 1")  # the transcoded copy plays
    shot = case["tmp"] / "viewer.png"
    d.save_screenshot(str(shot))
    assert browser.get_log("browser") == []
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    diving = np.array([0x2c, 0xa0, 0x2c])  # the third class's colour: its ground truth bar is drawn opaque
    assert (np.abs(pixels - diving).max(axis=1) <= 3).sum() > 200


@browser_test
def test_a_video_the_browser_cannot_play_is_said_on_the_page(case, browser):
    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], case["ann"], case["videos"])
    d = browser
    d.get(page.as_uri() + "#video=v_dive&t=2")
    wait(d, "return /cannot be played/.test(document.getElementById('status').textContent)")
    assert "--view-copy" in d.execute_script("return document.getElementById('note').textContent")
    x_cursor = float(d.execute_script("return document.getElementById('cursor').getAttribute('x1')"))
    assert abs(x_cursor - (130 + 900 * 2 / CASE["v_dive"][0])) < 0.5  # the hash's time, without a video
    assert browser.get_log("browser") == []


@browser_test
def test_the_reports_timelines_open_the_viewer_at_their_video(case, browser):
    from selenium.webdriver.common.by import By
    from tsrnet.detect.diagnosis.diagnose import diagnose_results, write_diagnosis

    page = write_viewer(case["tmp"] / "view", case["scores"], CLASSES, case["results"], case["ann"], case["videos"],
                        copy=True)
    runs = {"run": diagnose_results(case["ann"], case["results"])}
    report = write_diagnosis(runs, case["ann"], report_dir=case["tmp"] / "report", viewer=(page, {"v_dive"}))
    d = browser
    d.get(report.as_uri())
    links = d.find_elements(By.CSS_SELECTOR, "#timelines a.watch")
    assert len(links) == 1  # only the videos the viewer shows
    links[0].click()
    wait(d, "return document.getElementById('name') && document.getElementById('name').textContent === 'v_dive'")
    wait(d, "return document.getElementById('video').readyState >= 1")
    assert browser.get_log("browser") == []
