"""The formats every stage reads and writes: the HDF5 feature store, batching of its videos, ground truth and
detections, subsets and evaluation protocols."""
