"""Image folders: root/<label>/<image> into (N, C, H, W) in [0, 1]; every problem a one-line DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

import pandas as pd

from forgeml.data.images import ImagePixels, image_folder_table, is_image_folder, read_image_folder
from forgeml.errors import DataError


def _save(path: Path, value: int, size=(6, 4), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (value, 255 - value, 0) if mode == "RGB" else value
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "pets"
    for i in range(3):
        _save(root / "cat" / f"c{i}.png", 10 * i)
        _save(root / "dog" / f"d{i}.jpg", 200)
    _save(root / "dog" / "gray.bmp", 128, mode="L")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"junk")
    return root


def test_reads_every_class_in_order_as_rgb(folder):
    X, labels, paths = read_image_folder(folder)
    assert X.shape == (7, 3, 4, 6) and X.dtype == np.float32  # (N, C, H, W): 6 wide, 4 high
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert labels.tolist() == ["cat"] * 3 + ["dog"] * 4
    assert [p.name for p in paths][:3] == ["c0.png", "c1.png", "c2.png"]
    assert X[1, 0, 0, 0] == pytest.approx(10 / 255)
    assert X[6, :, 0, 0] == pytest.approx([128 / 255] * 3)  # grayscale file converted to RGB


def test_grayscale_and_resize(folder):
    X, _, _ = read_image_folder(folder, size=(8, 5), grayscale=True)
    assert X.shape == (7, 1, 8, 5)
    assert read_image_folder(folder, size=3)[0].shape == (7, 3, 3, 3)


def test_different_sizes_need_a_size(folder):
    _save(folder / "cat" / "big.png", 5, size=(9, 9))
    with pytest.raises(DataError, match=r"c0.png' is 6x4 but 'big.png' is 9x9; pass size=\(height, width\)"):
        read_image_folder(folder)
    assert read_image_folder(folder, size=(4, 6))[0].shape == (8, 3, 4, 6)


def test_one_class_is_refused(tmp_path):
    _save(tmp_path / "x" / "cat" / "a.png", 1)
    _save(tmp_path / "x" / "cat" / "b.png", 2)
    with pytest.raises(DataError) as info:
        read_image_folder(tmp_path / "x")
    assert str(info.value).startswith(f"image folder '{tmp_path / 'x'}' has one class 'cat'; a classifier needs at least two")


def test_missing_folder_and_no_images(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="has no images"):
        read_image_folder(tmp_path / "empty")


def test_unreadable_image_is_named(folder):
    (folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DataError, match="cannot read image '.*broken.jpg'") as info:
        read_image_folder(folder)
    assert "\n" not in str(info.value)


def test_image_folder_as_a_table_of_paths_and_labels(folder, tmp_path):
    table = image_folder_table(folder)
    assert list(table.columns) == ["image", "label"] and len(table) == 7
    assert table["label"].value_counts().to_dict() == {"dog": 4, "cat": 3}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["image"])
    assert is_image_folder(folder) and not is_image_folder(tmp_path / "nowhere") and not is_image_folder(folder / "cat")


def test_pixels_learn_mode_and_most_common_size_and_resize_the_rest(folder):
    paths = image_folder_table(folder)[["image"]]
    pixels = ImagePixels().fit(paths)
    assert pixels.mode_ == "RGB" and pixels.image_shape_ == (3, 4, 6)  # 6x4 wins; one image is grayscale
    out = pixels.transform(paths)
    assert out.shape == (7, 3 * 4 * 6) and out.dtype == np.float32 and 0.0 <= out.min() <= out.max() <= 1.0
    assert len(pixels.get_feature_names_out()) == out.shape[1]
    gray = ImagePixels(size=(2, 3)).fit(paths[paths["image"].str.endswith(".bmp")])
    assert gray.mode_ == "L" and gray.image_shape_ == (1, 2, 3)
    assert gray.transform(paths.iloc[:1]).shape == (1, 6)  # a colour image read as grayscale


def test_large_images_are_shrunk_to_max_pixels_keeping_the_aspect(tmp_path):
    for label in ("a", "b"):
        _save(tmp_path / "big" / label / "0.png", 50, size=(400, 200))
    pixels = ImagePixels(max_pixels=64 * 64).fit(image_folder_table(tmp_path / "big", target="y")[["image"]])
    channels, height, width = pixels.image_shape_
    assert height * width <= 64 * 64 and width == pytest.approx(2 * height, abs=1)


def test_missing_and_unreadable_images_are_named(folder, tmp_path):
    pixels = ImagePixels().fit(image_folder_table(folder)[["image"]])
    with pytest.raises(DataError, match="image file '.*nope.png' not found"):
        pixels.transform(pd.DataFrame({"image": [str(tmp_path / "nope.png")]}))
    with pytest.raises(DataError, match="1 rows have no image path"):
        pixels.transform(pd.DataFrame({"image": [None]}))
    with pytest.raises(DataError, match="cannot read image"):
        pixels.transform(pd.DataFrame({"image": [str(folder / "dog" / "notes.txt")]}))
