"""Images from a folder per class (root/<label>/*.png|jpg|jpeg|bmp) into one array for the CNN."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

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


def _class_files(root: Path) -> list[tuple[str, Path]]:
    """(label, file) of every image under root/<label>/, sorted; DataError unless two classes have images."""
    if not root.is_dir():
        raise DataError(f"image folder '{root}' not found" if not root.exists() else f"'{root}' is a file, not an image folder")
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
    return files


def read_image_folder(
    root: str | Path, *, size: int | tuple[int, int] | None = None, grayscale: bool = False
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read root/<label>/<image> files into (X float32 (N, C, H, W) in [0, 1], labels (N,) str, paths).

    C is 1 with grayscale, else 3 (RGB). size (height, width) resizes every image; without it all
    images must already have one size. Files with other suffixes and hidden files are ignored.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    target = _size(size)
    files = _class_files(root)
    labels_seen = sorted({label for label, _ in files})
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


def image_folder_table(root: str | Path, *, target: str = "label") -> pd.DataFrame:
    """root/<label>/<image> as a table: an `image` column of absolute file paths and a `target` column of
    folder names, one row per image, the way every reader hands a table to the pipeline."""
    root = Path(root)
    files = _class_files(root)
    return pd.DataFrame({"image": [str(p.resolve()) for _, p in files], target: [label for label, _ in files]})


def is_image_folder(path: str | Path) -> bool:
    """Whether `path` is a folder whose subfolders hold images (the layout image_folder_table reads)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for sub in path.iterdir():
        if sub.is_dir() and not sub.name.startswith("."):
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir() if f.is_file()):
                return True
    return False


def looks_like_image_paths(values: pd.Series) -> bool:
    """Whether (non-missing, string) values are image file names: every one ends in an image suffix."""
    text = values.astype(str).str.strip().str.lower()
    return len(text) > 0 and bool(text.str.endswith(IMAGE_SUFFIXES).all())


class ImagePixels(TransformerMixin, BaseEstimator):
    """A column of image file paths -> one row of pixels per image, float32 in [0, 1], flattened (C*H*W).

    fit decides the colour mode (grayscale when every sampled image is grayscale, else RGB) and the size
    (`size` (height, width), else the most common size among the sampled images, shrunk to at most
    `max_pixels` keeping its aspect ratio); every image is resized to it. image_shape_ = (C, H, W) tells a
    CNN how to fold the rows back into images. Tabular models read the pixels as features.
    """

    def __init__(self, size: tuple[int, int] | None = None, max_pixels: int = 64 * 64, sample: int = 200):
        self.size = size
        self.max_pixels = max_pixels
        self.sample = sample

    def fit(self, X: Any, y: Any = None) -> ImagePixels:
        paths = self._paths(X)
        if not paths:
            raise DataError("the image column is empty: no image paths to learn from")
        step = max(1, len(paths) // self.sample)
        sizes, gray = [], True
        for path in paths[::step][: self.sample]:
            with _open(path) as img:
                sizes.append((img.height, img.width))
                gray = gray and img.mode in ("1", "L", "LA", "I", "I;16", "F")
        height, width = _size(self.size) or max(set(sizes), key=sizes.count)
        if self.size is None and height * width > self.max_pixels:
            shrink = (self.max_pixels / (height * width)) ** 0.5
            height, width = max(1, int(height * shrink)), max(1, int(width * shrink))
        self.mode_ = "L" if gray else "RGB"
        self.image_shape_ = (1 if gray else 3, int(height), int(width))
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        from PIL import Image

        channels, height, width = self.image_shape_
        paths = self._paths(X)
        out = np.empty((len(paths), channels * height * width), dtype=np.float32)
        for i, path in enumerate(paths):
            with _open(path) as img:
                img = img.convert(self.mode_)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.float32) / 255.0
            out[i] = (pixels if channels == 1 else pixels.transpose(2, 0, 1)).reshape(-1)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        channels, height, width = self.image_shape_
        return np.asarray([f"pixel_{c}_{r}_{k}" for c in range(channels) for r in range(height) for k in range(width)],
                          dtype=object)

    @staticmethod
    def _paths(X: Any) -> list[str]:
        column = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else pd.Series(np.asarray(X, dtype=object).reshape(len(X), -1)[:, 0])
        missing = column.isna()
        if missing.any():
            raise DataError(f"{int(missing.sum())} rows have no image path (first at row {int(np.argmax(missing.to_numpy()))}); "
                            "every row needs an image file")
        return [str(p) for p in column]


def _open(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DataError(f"image file '{path}' not found; image paths are read relative to the current folder") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image '{path}': {str(exc).splitlines()[0] or type(exc).__name__}") from None
