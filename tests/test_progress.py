"""The progress display shared by every command: a bar on a terminal, sparse plain lines in a log."""
import io

import pytest

from tsrnet.data.core.progress import LogProgress, progress_bar, progress_interval
from tsrnet.data.core.errors import DataError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_log_lines_come_at_the_interval_and_at_the_end():
    out, clock = io.StringIO(), Clock()
    bar = LogProgress(total=100, desc="extract x.h5", unit="row", stream=out, interval=60, clock=clock)
    for _ in range(10):  # 10 rows every 10 s: a line at 60 s, then none until 120 s
        clock.t += 10
        bar.update(10)
    bar.set_postfix(last="v3")
    bar.close()
    bar.close()  # idempotent, as tqdm's
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 2, lines
    # at 60 s: 60 of 100 rows at 1 row/s, 40 left: ETA 40 s
    assert lines[0] == "extract x.h5: 60/100 row (60.0%), 1 row/s, ETA 0:00:40, elapsed 0:01:00"
    assert lines[1] == "extract x.h5: 100/100 row (100.0%), 1 row/s, elapsed 0:01:40, last=v3"


def test_log_rate_counts_only_this_run_and_total_may_change():
    out, clock = io.StringIO(), Clock()
    bar = LogProgress(total=10, initial=4, desc="train", unit="epoch", stream=out, interval=0, clock=clock)
    clock.t = 2
    bar.update(1)  # a resumed run: 1 epoch in 2 s, 5 left
    bar.total = 12  # a video turned out longer than its header said
    clock.t = 4
    bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["train: 5/10 epoch (50.0%), 0.5 epoch/s, ETA 0:00:10, elapsed 0:00:02",
                     "train: 6/12 epoch (50.0%), 0.5 epoch/s, ETA 0:00:12, elapsed 0:00:04"]


def test_disabled_or_idle_prints_nothing_and_write_always_prints():
    out = io.StringIO()
    bar = LogProgress(total=3, stream=out, interval=0, disable=True)
    bar.update(3)
    bar.close()
    idle = LogProgress(total=3, stream=out, interval=0)
    idle.close()  # nothing done: no summary line
    assert out.getvalue() == ""
    idle.write("video v: failed")
    assert out.getvalue() == "video v: failed\n"


def test_iteration_counts_items_and_closes():
    out = io.StringIO()
    assert list(progress_bar(range(3), desc="detect", unit="batch", stream=out, interval=3600)) == [0, 1, 2]
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detect: 3/3 batch (100.0%)")


def test_terminal_gets_a_bar_and_a_file_gets_lines(monkeypatch):
    from tqdm.auto import tqdm

    bar = progress_bar(total=2, stream=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress_bar(total=2, stream=io.StringIO()), LogProgress)
    monkeypatch.setenv("TSRNET_PROGRESS_INTERVAL", "5")
    assert progress_bar(total=2, stream=io.StringIO()).interval == 5.0


@pytest.mark.parametrize("value, expected", [(None, 60.0), ("", 60.0), ("0", 0.0), ("12.5", 12.5)])
def test_interval_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("TSRNET_PROGRESS_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("TSRNET_PROGRESS_INTERVAL", value)
    assert progress_interval() == expected


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_interval_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv("TSRNET_PROGRESS_INTERVAL", value)
    with pytest.raises(DataError, match="TSRNET_PROGRESS_INTERVAL"):
        progress_interval()
