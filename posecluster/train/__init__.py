"""Training: a pure torch loop (no Ray), checkpoints in storage, evaluation as DeepLabCut reports it."""
