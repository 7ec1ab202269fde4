"""The labeling loop over an archive: pick frames to label, find frames the network gets wrong, merge
refined labels back as a new iteration (DeepLabCut's extract_frames / extract_outlier_frames /
merge_datasets, with videos and projects addressed by URI)."""
