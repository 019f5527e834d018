"""New videos extracted as a store's were: the recipe a store of extract-features records, read back.

``detect VIDEO... --run RUN`` extracts its videos with the settings of the store the run was trained on:
:func:`settings_from_store` turns that store's record (its ``extraction`` and ``info`` root attributes) into
:class:`ExtractSettings`, refusing a store whose features cannot be made again, and :func:`extract_videos`
runs the ordinary extraction (:func:`run_extraction`) with them, so nothing of the recipe is copied by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

from tsrnet.data.core.errors import DataError

from .job import ExtractSettings, prepare
from .sources import find_videos

BACKBONES = ("resnet101",)  # the backbones extract-features implements
PRESET_WEIGHTS = ("imagenet", "random")


def read_recipe(store: str | Path) -> tuple[dict, dict]:
    """A store's ``extraction`` record and its other root attributes (JSON values decoded); ``({}, attrs)``
    for a store that records no extraction (an imported release)."""
    import h5py

    store = Path(store)
    if not store.exists():
        raise DataError("the run's feature store is no longer there, and the recipe to extract videos for this run "
                        "is recorded in it; put it back at this path", store)
    try:
        with h5py.File(store, "r") as f:
            raw = {k: f.attrs[k] for k in f.attrs}
    except OSError as e:
        raise DataError(f"is not a readable HDF5 store ({e})", store) from None
    attrs = {}
    for k, v in raw.items():
        v = v.decode() if isinstance(v, bytes) else v
        if isinstance(v, str) and v[:1] in "{[":
            try:
                v = json.loads(v)
            except ValueError:
                pass
        attrs[k] = v
    extraction = attrs.pop("extraction", None) or {}
    return (extraction if isinstance(extraction, dict) else {}), attrs


def settings_from_store(store: str | Path, source, out: str | Path, device: str = "auto", *, threads: int = 0,
                        quiet: bool = False) -> ExtractSettings:
    """Settings that extract ``source`` (a video, a folder, a .txt list, or a list of those) into the store
    ``out`` exactly as the videos of ``store`` were extracted: the same weights files, rows per second,
    resize and crop, flow stack, TV-L1 parameters and backend, decoder and precision, on ``device``.

    Refused (:class:`DataError`, before anything is written) when ``store`` cannot be reproduced: it was not
    written by extract-features, its backbone is not this project's, a weights file is no longer at its
    recorded path or its content changed; or when ``out`` holds features of other settings.
    """
    store, out = Path(store), Path(out)
    extraction, info = read_recipe(store)
    made_by = info.get("source")
    if not extraction or made_by != "extract-features":
        raise DataError(f"was not written by extract-features ({'made by ' + str(made_by) if made_by else 'no extraction record'}"
                        "; imported from a release?), so nothing says how to make its features from videos; "
                        "to detect on videos, train on a store of extract-features, or extract the videos as that "
                        "release did and pass their store to detect", store)
    backbone = extraction.get("backbone")
    if backbone not in BACKBONES:
        raise DataError(f"its features come from the backbone {backbone!r}, which this project does not implement "
                        f"(extract-features makes {', '.join(BACKBONES)} features); extract the videos with that "
                        "backbone's own tools and pass their store to detect", store)
    files = info.get("weights_files") or {}
    for stream in ("rgb", "flow"):
        spec = files.get(stream)
        if spec is None:
            raise DataError(f"records no {stream} weights file, so its features cannot be made again", store)
        if spec not in PRESET_WEIGHTS and not Path(spec).is_file():
            raise DataError(f"its {stream} weights {spec} are no longer at that path; put that checkpoint back "
                            f"(the store records it as {extraction.get('weights', {}).get(stream)})", store)
    tf = extraction.get("transform") or {}
    settings = ExtractSettings(
        source=tuple(Path(s) for s in source) if isinstance(source, (list, tuple)) else Path(source), out=out,
        rows_per_second=extraction.get("rows_per_second"), decoder=info.get("decoder", "decord"),
        flow_backend=info.get("flow_backend", "auto"), device=device, weights=files["rgb"],
        flow_weights=files["flow"], precision=info.get("precision", "auto"), resize=int(tf.get("resize", 0)),
        crop=int(tf.get("crop", 0)), threads=threads, shard=(0, 1), quiet=quiet, tvl1=dict(tf.get("tvl1") or {}))
    try:
        made = prepare(settings).extraction  # what extract-features records for these settings, checked
    except TypeError as e:  # a TV-L1 field this version does not know
        raise DataError(f"records TV-L1 settings this version cannot apply ({e})", store) from None
    _refuse_differences(store, files, extraction, json.loads(json.dumps(made)))
    _refuse_other_cache(out, store, extraction)
    return settings


def _refuse_differences(store: Path, files: dict, recorded: dict, made: dict) -> None:
    from .writer import settings_diff

    for stream in ("rgb", "flow"):
        then, now = recorded.get("weights", {}).get(stream), made["weights"][stream]
        if then != now:
            raise DataError(f"its {stream} weights file {files[stream]} has changed since the store was extracted "
                            f"(it was {then}, it is {now}); put back the checkpoint the run's features were made "
                            "with", store)
    diff = settings_diff(recorded, made)
    if diff:
        raise DataError(f"its extraction cannot be made again by this version of extract-features ({', '.join(diff)} "
                        "differ); extract the videos with extract-features and detect on that store", store)


def _refuse_other_cache(out: Path, store: Path, extraction: dict) -> None:
    from .writer import read_settings, settings_diff

    old, _ = read_settings(out)
    if out.exists() and not old:
        raise DataError("exists and was not written by extract-features; give another path for the videos' features",
                        out)
    if old and old != extraction:
        raise DataError(f"holds features extracted with other settings ({', '.join(settings_diff(old, extraction))}) "
                        f"than the run's store {store}; give another path for the videos' features", out)


def extract_videos(settings: ExtractSettings) -> tuple[list[str], dict[str, str]]:
    """Extract the videos of ``settings`` not yet in its store (:func:`run_extraction`: progress, videos done
    before skipped, a changed file redone); returns the ids of all its videos and, of those, the ones that
    could not be extracted, with the reason."""
    from .run import run_extraction
    from .writer import read_settings

    ids = sorted(p.stem for p in find_videos(settings.source)[0])
    run_extraction(settings)
    _, failures = read_settings(settings.out)
    failed = {f["video"]: f["reason"] for f in failures if f["video"] in set(ids)}
    return ids, failed
