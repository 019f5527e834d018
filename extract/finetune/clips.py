"""The clips to train on and their labels: ``<root>/<Class>/<clip>`` folders, or any videos with
video-level labels from an annotation file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tsrnet.data.core.errors import DataError
from tsrnet.data.format.subsets import train_subset_by_convention
from tsrnet.extract.sources import find_videos


@dataclass(frozen=True)
class Clip:
    id: str  # the file stem, as extract-features names videos
    path: Path
    labels: tuple[str, ...]  # sorted; several for an untrimmed video with several classes


def find_clips(source: Path, annotations=None, subset: str | None = None, ann_path=None) -> tuple[list[Clip], str]:
    """The labelled clips of ``source`` and a phrase saying where the labels came from.

    Without ``annotations`` a clip's label is its folder (the UCF101 layout that
    ``extract-features --trimmed`` reads); with them, the video-level labels of the
    ``subset`` (by the training-subset convention when None), and videos the file does
    not label are left out.
    """
    paths, root = find_videos(Path(source))
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise DataError(f"two clips share the id {p.stem!r}: {seen[p.stem]} and {p}", source, p.stem)
        seen[p.stem] = p
    if annotations is not None:
        if subset is None:
            subset, why = train_subset_by_convention(annotations.subsets(), ann_path)
        else:
            why = f"subset {subset!r}"
            if subset not in annotations.subsets():
                raise DataError(f"no subset {subset!r} (it has {annotations.subsets()})", ann_path)
        chosen = annotations.select(subset)
        clips = [Clip(v, p, tuple(chosen[v].labels)) for v, p in sorted(seen.items())
                 if v in chosen and chosen[v].labels]
        if not clips:
            raise DataError(f"none of the {len(seen)} videos has labels in {subset or 'the file'}", ann_path)
        return clips, f"labels from the annotations ({why}): {len(clips)} of {len(seen)} videos"
    clips = []
    for v, p in sorted(seen.items()):
        if root is None or p.parent == root:
            raise DataError("a clip must sit in a folder named after its class (<root>/<Class>/<clip>), "
                            "or pass --annotations with video-level labels", p)
        clips.append(Clip(v, p, (p.parent.name,)))
    return clips, f"labels from the class folders: {len(clips)} clips"


def class_list(clips: list[Clip], source) -> list[str]:
    classes = sorted({c for clip in clips for c in clip.labels})
    if len(classes) < 2:
        raise DataError(f"the clips name {len(classes)} class(es) ({', '.join(classes) or 'none'}); "
                        "a classifier needs at least 2", source)
    return classes
