"""The data layer, shared by every stage and every method, in four roles (docs/architecture.md):

- :mod:`tsrnet.data.core`: plumbing every stage uses: the project's errors, atomic output, ``opt()`` settings,
  devices and threads, progress and notes.
- :mod:`tsrnet.data.format`: the HDF5 feature store, batching of its videos, ground truth and detections
  (and :func:`~tsrnet.data.format.ground_truth.load_annotations`, which picks the reader), subsets and
  evaluation protocols.
- :mod:`tsrnet.data.importers`: features made elsewhere: the public releases (one module per layout) and
  per-video ``.npy`` files.
- :mod:`tsrnet.data.generators`: generated data with known ground truth: planted-action feature stores and the
  benchmark family, synthetic videos, flow pairs.

``cli.py`` holds the data commands; ``common_cli.py`` what every command module shares (options from
``opt()`` declarations, one-line errors).
"""
from tsrnet.data.core.errors import DataError

__all__ = ["DataError"]
