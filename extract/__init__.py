"""Extraction stage: decode videos, TV-L1 flow, two-stream ResNet101 features."""
