"""Looking at results: labeled videos and per-video plots (DLC's create_labeled_video / plot_trajectories)."""
