"""Images from a folder per class (root/<label>/*.png|jpg|jpeg|bmp) into one array for the CNN."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from forgeml.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _size(size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """size as (height, width); an int means a square."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in pair):
        raise DataError(f"image size must be a positive int or (height, width); got {size!r}")
    return int(pair[0]), int(pair[1])


def read_image_folder(
    root: str | Path, *, size: int | tuple[int, int] | None = None, grayscale: bool = False
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read root/<label>/<image> files into (X float32 (N, C, H, W) in [0, 1], labels (N,) str, paths).

    C is 1 with grayscale, else 3 (RGB). size (height, width) resizes every image; without it all
    images must already have one size. Files with other suffixes and hidden files are ignored.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' not found" if not root.exists() else f"'{root}' is a file, not an image folder")
    target = _size(size)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [
        (label_dir.name, f)
        for label_dir in classes
        for f in sorted(label_dir.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(
            f"image folder '{root}' has no images; expected {root}/<label>/<image> with suffixes "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    labels_seen = sorted({label for label, _ in files})
    if len(labels_seen) < 2:
        raise DataError(
            f"image folder '{root}' has one class '{labels_seen[0]}'; a classifier needs at least two "
            f"(one subfolder of images per class)"
        )
    mode = "L" if grayscale else "RGB"
    arrays, first_size = [], None
    for _, path in files:
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if target is not None and img.size != (target[1], target[0]):
                    img = img.resize((target[1], target[0]), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"cannot read image '{path}': {str(exc).splitlines()[0] or type(exc).__name__}") from None
        if first_size is None:
            first_size = (array.shape[:2], path)
        elif array.shape[:2] != first_size[0]:
            (h, w), other = first_size
            raise DataError(
                f"image '{path}' is {array.shape[1]}x{array.shape[0]} but '{other.name}' is {w}x{h}; "
                "pass size=(height, width) to resize them all"
            )
        arrays.append(array)
    X = np.stack(arrays).astype(np.float32) / 255.0  # (N, H, W) or (N, H, W, 3)
    X = X[:, None] if grayscale else X.transpose(0, 3, 1, 2)  # (N, C, H, W)
    labels = np.array([label for label, _ in files], dtype=str)
    log.debug("read %d images of %d classes from %s, shape %s", len(files), len(labels_seen), root, X.shape[1:])
    return np.ascontiguousarray(X), labels, [p for _, p in files]
