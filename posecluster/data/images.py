"""Still images (labeled frames) read from and written to storage."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from posecluster import storage
from posecluster.errors import InputError


def read_image(uri: str) -> np.ndarray:
    """An RGB uint8 array (height, width, 3)."""
    try:
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError:
        raise InputError(uri, "image missing") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(uri, f"not a readable image: {exc}") from None


def image_size(uri: str) -> tuple[int, int]:
    """(width, height), reading only as much of the file as the header needs."""
    try:
        with storage.open_uri(uri, "rb") as fh, Image.open(fh) as img:
            return img.size
    except FileNotFoundError:
        raise InputError(uri, "image missing") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(uri, f"not a readable image: {exc}") from None


def write_png(uri: str, rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    storage.atomic_write_bytes(uri, buf.getvalue())
