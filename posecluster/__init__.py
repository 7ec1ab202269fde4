"""posecluster: DeepLabCut-style markerless pose estimation as a batch system on object storage."""

__version__ = "0.1.0"
