"""The synthetic video generator: ground truth that matches the pixels, determinism, layout."""
import json

import cv2
import numpy as np
import pytest

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.generators.synthetic_videos import ACTORS, VideoSpec, generate_videos
from tsrnet.extract.decode import VideoReader

SMALL = VideoSpec(n_classes=3, n_train=2, n_test=2, clips_per_class=2, min_duration=8, max_duration=12,
                  min_action=2, max_action=3, seed=5)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("sv")
    generate_videos(root, SMALL, progress=False)
    return root


def test_layout_and_annotations(made):
    ann = load_annotations(made / "annotations.json")
    assert sorted(ann.subsets()) == ["test", "train"] and len(ann.video_ids()) == 4
    names = {a.name for a in ACTORS[:3]}
    for vid in ann.video_ids():
        v = ann[vid]
        assert (made / "untrimmed" / f"{vid}.mp4").exists()
        assert 1 <= len(v.segments) <= SMALL.max_instances and set(v.labels) <= names
        segs = sorted(v.segments, key=lambda s: s.start)
        for s in segs:
            assert 0 <= s.start < s.end <= v.duration
        for a, b in zip(segs, segs[1:]):
            assert b.start - a.end >= 1.0 - 1e-9  # background between instances
    clips = sorted(p.relative_to(made / "trimmed").parts for p in (made / "trimmed").rglob("*.mp4"))
    assert len(clips) == 6 and {c[0] for c in clips} == names


def _saturated_fraction(frame):
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    return float(((hsv[..., 1] > 150) & (hsv[..., 2] > 100)).mean())


def test_actors_are_on_screen_exactly_during_their_segments(made):
    # Actors are saturated colours; backgrounds and the distractor are not.
    ann = load_annotations(made / "annotations.json")
    for vid in ann.video_ids():
        r = VideoReader(made / "untrimmed" / f"{vid}.mp4", "pyav")
        frames = dict(r.frames(np.arange(len(r.frame_times))))
        inside = np.zeros(len(frames), bool)
        for s in ann[vid].segments:
            inside[int(round(s.start * SMALL.fps)):int(round(s.end * SMALL.fps))] = True
        sat = np.array([_saturated_fraction(frames[i]) for i in range(len(frames))])
        assert sat[~inside].max() < 0.002
        # an actor may leave the frame at the very end of a sliding motion
        assert np.median(sat[inside]) > 0.01


def test_same_seed_same_videos(made, tmp_path):
    generate_videos(tmp_path, SMALL, progress=False)
    assert json.loads((tmp_path / "annotations.json").read_text()) == json.loads(
        (made / "annotations.json").read_text())
    vid = sorted((made / "untrimmed").glob("*.mp4"))[0].name
    a = dict(VideoReader(made / "untrimmed" / vid, "pyav").frames(np.array([0, 7])))
    b = dict(VideoReader(tmp_path / "untrimmed" / vid, "pyav").frames(np.array([0, 7])))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("args,message", [
    (["--n-classes", "9"], "--n-classes must be 1..8"),
    (["--n-train", "0", "--n-test", "0"], "at least one video"),
    (["--min-duration", "30", "--max-duration", "20"], "--min-duration <= --max-duration"),
    (["--min-action", "5", "--min-duration", "6", "--max-duration", "8"], "1 s of background"),
    (["--width", "30"], "at least 2.5 x --actor-size"),
    (["--fps", "0"], "--fps must be positive"),
])
def test_bad_settings_exit_2_before_writing(tmp_path, args, message):
    from click.testing import CliRunner

    from tsrnet.data.cli import make_synthetic_videos

    r = CliRunner().invoke(make_synthetic_videos, [str(tmp_path / "out"), "--quiet", *args])
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--dim", "0"], "--dim must be >= 1"),
    (["--train-modes", "5", "--modes", "4"], "--train-modes <= --modes"),
    (["--min-action", "0"], "0 < --min-action"),
])
def test_feature_generator_bad_settings_exit_2(tmp_path, args, message):
    from click.testing import CliRunner

    from tsrnet.data.cli import make_synthetic_features

    r = CliRunner().invoke(make_synthetic_features, [str(tmp_path / "out"), *args])
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "out").exists()
