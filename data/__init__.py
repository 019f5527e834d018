"""Data layer shared by every stage and every method.

- :mod:`data.store`: the HDF5 feature store (``docs/formats.md``, section 1).
- :mod:`data.annotations`: the ground truth model and its readers (ActivityNet JSON, THUMOS14 per-class
  text files, CSV, W-TALC's folder); detections JSON.
- :mod:`data.ground_truth`: :func:`load_annotations`, the reader (generic or a release's) chosen by the path.
- :mod:`data.npy_import`: importer for per-video ``.npy`` features at a given rate.
- :mod:`data.releases`: importers for the public feature releases (W-TALC, BaS-Net, ACM-Net,
  ActionFormer, BSN), one module per layout, and their annotation files.
- :mod:`data.protocols`: evaluation sets (the THUMOS14 210-video preset) and the ambiguous-span rule.
- :mod:`data.synthetic`: planted-action feature stores with known ground truth.
- :mod:`data.synthetic_videos`: synthetic untrimmed videos and trimmed clips for the demo.
- :mod:`data.videos`: writing small real video files with PyAV.
- :mod:`data.synthetic_motion`: textures and frame pairs with known optical flow.
"""
from .errors import DataError

__all__ = ["DataError"]
