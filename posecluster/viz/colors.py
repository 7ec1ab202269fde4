"""One colour per body part, from a matplotlib colormap (DLC's default is rainbow)."""

from __future__ import annotations

import numpy as np


def bodypart_colors(count: int, colormap: str = "rainbow") -> np.ndarray:
    """(count, 3) uint8 RGB."""
    from matplotlib import colormaps

    cmap = colormaps[colormap]
    positions = np.linspace(0, 1, count) if count > 1 else np.array([0.5])
    return (np.asarray([cmap(p)[:3] for p in positions]) * 255).round().astype(np.uint8)
