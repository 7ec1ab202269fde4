"""Data: the labels model, file formats, video streaming, frame selection and training datasets."""
