"""Ground truth and detections.

- :mod:`.model`: :class:`Annotations`, :class:`VideoAnnotation`, :class:`Segment`.
- :mod:`.readers`: ActivityNet-style JSON, the THUMOS14 per-class text files, CSV and W-TALC's
  annotation folder, and the checked conversions they share with the release readers.
- :mod:`.detections`: detections JSON (``docs/formats.md``, section 3).

Reading a path of any supported form, the reader chosen by what the path is, is
:func:`tsrnet.data.format.ground_truth.load_annotations`: it also dispatches to the feature releases'
annotation readers (``data/importers/releases``), which are built on the modules here, so it lives above
both and is not re-exported from this package.
"""
from tsrnet.data.format.annotations.detections import DETECTION_COLUMNS, detections_frame, read_detections, write_detections
from tsrnet.data.format.annotations.model import Annotations, Segment, VideoAnnotation
from tsrnet.data.format.annotations.readers import (THUMOS_SUFFIX_SUBSET, WTALC_FILES, read_activitynet, read_ambiguous, read_csv, read_thumos,
                      read_wtalc)

__all__ = ["Annotations", "DETECTION_COLUMNS", "Segment", "THUMOS_SUFFIX_SUBSET", "VideoAnnotation", "WTALC_FILES",
           "detections_frame", "read_activitynet", "read_ambiguous", "read_csv", "read_detections", "read_thumos",
           "read_wtalc", "write_detections"]
