"""media/thumbnailer.py: sizes, formats, orientation, draft decoding, and refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from dendrite_lite.media import thumbnailer
from dendrite_lite.media.thumbnail_sizes import (
    STANDARD_SIZES,
    ImageTooLarge,
    NotThumbnailable,
    ThumbnailSize,
)
from dendrite_lite.media.thumbnailer import image_info, make_thumbnails
from tests.media_images import SVG, animated_gif, jpeg, png, png_bomb, rotated_jpeg

MAX_PIXELS = 32_000_000


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "f"
    path.write_bytes(data)
    return path


def test_twelve_megapixel_jpeg_gets_every_standard_size(tmp_path: Path) -> None:
    path = _file(tmp_path, jpeg(4000, 3000))
    thumbs = make_thumbnails(path, STANDARD_SIZES, max_pixels=MAX_PIXELS)
    got = [(t.width, t.height, t.content_type) for t in thumbs]
    assert got == [
        (32, 32, "image/jpeg"), (96, 96, "image/jpeg"), (320, 240, "image/jpeg"),
        (640, 480, "image/jpeg"), (800, 600, "image/jpeg"),
    ]
    for t in thumbs:
        with Image.open(io.BytesIO(t.data)) as img:
            assert (img.format, img.size) == ("JPEG", (t.width, t.height))


def test_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path) -> None:
    # 800x600 out of 4000x3000 needs 1/5 of the resolution: draft decodes at 1/4 (1000x750),
    # a 16th of the pixels of a full decode.
    path = _file(tmp_path, jpeg(4000, 3000))
    with Image.open(path) as img:
        decoded = thumbnailer._decode(img, (ThumbnailSize(800, 600, "scale"),))
    assert decoded.size == (1000, 750)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = _file(tmp_path, rotated_jpeg())
    assert image_info(path, max_pixels=MAX_PIXELS) == (200, 400, False)
    [thumb] = make_thumbnails(path, (ThumbnailSize(320, 240, "scale"),), max_pixels=MAX_PIXELS)
    assert (thumb.width, thumb.height) == (120, 240)
    with Image.open(io.BytesIO(thumb.data)) as img:
        left, right = img.getpixel((20, 120)), img.getpixel((100, 120))
    assert left[2] > 200 and left[0] < 60  # blue
    assert right[0] > 200 and right[2] < 60  # red


def test_png_stays_png_with_alpha_and_is_never_upscaled(tmp_path: Path) -> None:
    path = _file(tmp_path, png(20, 50))
    crop, scale = make_thumbnails(
        path, (ThumbnailSize(32, 32, "crop"), ThumbnailSize(320, 240, "scale")), max_pixels=MAX_PIXELS
    )
    assert (crop.width, crop.height, crop.content_type) == (20, 20, "image/png")
    assert (scale.width, scale.height) == (20, 50)
    with Image.open(io.BytesIO(crop.data)) as img:
        assert img.mode == "RGBA" and img.getpixel((5, 5)) == (0, 128, 255, 200)


def test_animated_gif_keeps_its_frames_only_when_asked(tmp_path: Path) -> None:
    path = _file(tmp_path, animated_gif(frames=3))
    size = (ThumbnailSize(96, 96, "crop"),)
    [moving] = make_thumbnails(path, size, max_pixels=MAX_PIXELS, animated=True)
    [still] = make_thumbnails(path, size, max_pixels=MAX_PIXELS)
    assert (moving.content_type, moving.animated) == ("image/gif", True)
    with Image.open(io.BytesIO(moving.data)) as img:
        assert (img.size, img.n_frames) == ((96, 96), 3)
    assert (still.content_type, still.animated) == ("image/png", False)
    assert image_info(path, max_pixels=MAX_PIXELS)[2] is True


@pytest.mark.parametrize(
    ("side", "message"),
    [
        (8_000, "8000x8000 pixels, over the limit of 32000000"),  # ours: 64 MP
        (20_000, "400000000 pixels"),  # past Pillow's own bomb limit (179 MP)
    ],
)
def test_png_bomb_is_refused_from_its_header(tmp_path: Path, side: int, message: str) -> None:
    path = _file(tmp_path, png_bomb(side))
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageTooLarge, match=message):
        make_thumbnails(path, STANDARD_SIZES, max_pixels=MAX_PIXELS)
    with pytest.raises(ImageTooLarge):
        image_info(path, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg(800, 600)[:3000], id="truncated-jpeg"),
        pytest.param(b"this is a text file, not a PNG\n" * 10, id="not-an-image"),
        pytest.param(SVG, id="svg"),
    ],
)
def test_undecodable_content_is_not_thumbnailable(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NotThumbnailable):
        make_thumbnails(_file(tmp_path, data), STANDARD_SIZES, max_pixels=MAX_PIXELS)


def test_webp_still_and_animated(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (300, 200), (0, 60 * i, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=80, loop=0)
    path = _file(tmp_path, out.getvalue())
    assert image_info(path, max_pixels=MAX_PIXELS) == (300, 200, True)
    size = (ThumbnailSize(96, 96, "crop"),)
    [moving] = make_thumbnails(path, size, max_pixels=MAX_PIXELS, animated=True)
    assert moving.content_type == "image/webp"
    with Image.open(io.BytesIO(moving.data)) as img:
        assert (img.format, img.size, img.n_frames) == ("WEBP", (96, 96), 3)
    [still] = make_thumbnails(path, (ThumbnailSize(320, 240, "scale"),), max_pixels=MAX_PIXELS)
    assert (still.content_type, still.width, still.height) == ("image/png", 300, 200)


def test_animation_frames_are_bounded_by_the_pixel_budget(tmp_path: Path) -> None:
    # 6 frames of 200x200 (40,000 pixels each). With max_pixels 40,000 the budget is 4 x 40,000
    # pixels: 4 frames; with a larger limit all 6 are kept.
    path = _file(tmp_path, animated_gif(frames=6))
    size = (ThumbnailSize(32, 32, "crop"),)
    for max_pixels, frames in ((40_000, 4), (1_000_000, 6)):
        [moving] = make_thumbnails(path, size, max_pixels=max_pixels, animated=True)
        with Image.open(io.BytesIO(moving.data)) as img:
            assert img.n_frames == frames
