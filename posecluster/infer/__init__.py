"""Inference: the predictor (model + frames -> poses) and the decode/infer pipeline over a video."""
