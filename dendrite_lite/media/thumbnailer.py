"""Making thumbnails with Pillow: plain blocking functions, run in media/thumbnails.py's pool
(sizes, results and errors are in thumbnail_sizes.py).

    thumbs = make_thumbnails(path, STANDARD_SIZES, max_pixels=32_000_000)

What keeps a hostile or broken file from hurting the server:
- only JPEG, PNG, GIF and WebP are decoded (`Image.open(formats=...)`): SVG and other active or
  exotic formats never reach a decoder, whatever content type the uploader claimed;
- the pixel count is read from the header and checked against `max_pixels` before any pixel is
  decoded (a 1 KB PNG that inflates to gigabytes is refused with ImageTooLarge); Pillow's own
  DecompressionBombError is mapped to the same;
- JPEGs are decoded with `draft`, at the smallest 1/2, 1/4 or 1/8 scale still big enough for the
  largest thumbnail asked: a 12-megapixel photo is decoded as 0.75 MP for an 800x600 thumbnail,
  a 16th of the memory and time;
- a truncated or undecodable file raises NotThumbnailable, never anything else.

Sizes follow the spec (content_repo.md §Thumbnails): "crop" gives exactly the asked aspect ratio
(the centre of the image), "scale" keeps the image's own and fits inside the asked box; neither
ever upscales. EXIF orientation is applied first, so a portrait photo stays upright.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from dendrite_lite.media.thumbnail_sizes import (
    ImageTooLarge,
    NotThumbnailable,
    Thumbnail,
    ThumbnailSize,
)

__all__ = ["make_thumbnails", "image_info"]

# The formats Pillow may decode.
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
# Animated thumbnails keep at most this many frames (a long GIF is cut short, not refused), and
# decode at most ANIMATION_BUDGET times max_pixels in all: 100 frames of a small GIF, a few of
# a huge one (each frame is decoded at full size: GIF and WebP have no draft mode).
MAX_FRAMES = 100
ANIMATION_BUDGET = 4
_JPEG_QUALITY = 80
_EXIF_ORIENTATION = 0x0112


def image_info(path: Path, *, max_pixels: int) -> tuple[int, int, bool]:
    """The upright (EXIF-oriented) dimensions of an image and whether it is animated, from its
    header only."""
    with _open(path, max_pixels) as img:
        try:
            return (*_oriented_size(img), bool(getattr(img, "is_animated", False)))
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(str(e)) from None
        except (OSError, ValueError, SyntaxError) as e:
            # Reading a PNG's EXIF chunk decodes the image data: a corrupt stream shows here.
            raise NotThumbnailable(f"cannot decode image: {e}") from None


def make_thumbnails(
    path: Path, sizes: tuple[ThumbnailSize, ...], *, max_pixels: int, animated: bool = False
) -> list[Thumbnail]:
    """One thumbnail per size, from one decode of the image."""
    with _open(path, max_pixels) as img:
        try:
            if animated and getattr(img, "is_animated", False):
                budget = ANIMATION_BUDGET * max_pixels // (img.width * img.height)
                frames = min(MAX_FRAMES, max(1, budget))
                return [_animated(img, size, frames) for size in sizes]
            still = _decode(img, sizes)
            return [_still(still, img.format or "", size) for size in sizes]
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(str(e)) from None
        except (OSError, ValueError, SyntaxError) as e:
            # Pillow's word for truncated and corrupt data ("image file is truncated", ...).
            raise NotThumbnailable(f"cannot decode image: {e}") from None


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        img = Image.open(path, formats=_FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(str(e)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise NotThumbnailable(f"not an image we thumbnail: {e}") from None
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"image is {img.width}x{img.height} pixels, over the limit of {max_pixels}"
        )
    return img


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    if img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
        return img.height, img.width
    return img.width, img.height


def _decode(img: Image.Image, sizes: tuple[ThumbnailSize, ...]) -> Image.Image:
    """The image decoded (at a reduced JPEG scale when that is enough) and upright."""
    width, height = _oriented_size(img)
    scale = max(_needed_scale(width, height, size) for size in sizes)
    if img.format == "JPEG" and scale < 1:
        # draft picks the smallest DCT scale giving at least this size; the scale factor is the
        # same before and after rotation, so the raw dimensions are used.
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
    upright = ImageOps.exif_transpose(img)
    upright.load()
    return upright


def _needed_scale(width: int, height: int, size: ThumbnailSize) -> float:
    """How much of the upright image's resolution this thumbnail needs (at most 1)."""
    if size.method == "crop":
        crop_w, _ = _crop_box_size(width, height, size)
        return min(1.0, size.width / crop_w)
    return min(1.0, size.width / width, size.height / height)


def _crop_box_size(width: int, height: int, size: ThumbnailSize) -> tuple[int, int]:
    """The largest centred region of the asked aspect ratio."""
    if width * size.height > height * size.width:  # wider than asked
        return max(1, round(height * size.width / size.height)), height
    return width, max(1, round(width * size.height / size.width))


def _resize(img: Image.Image, size: ThumbnailSize) -> Image.Image:
    if size.method == "crop":
        crop_w, crop_h = _crop_box_size(img.width, img.height, size)
        left, top = (img.width - crop_w) // 2, (img.height - crop_h) // 2
        img = img.crop((left, top, left + crop_w, top + crop_h))
        if crop_w > size.width:  # never upscale a small image: it stays as cropped
            img = img.resize((size.width, size.height), Image.Resampling.LANCZOS)
        return img
    img = img.copy()
    img.thumbnail((size.width, size.height), Image.Resampling.LANCZOS)  # never upscales
    return img


def _still(img: Image.Image, source_format: str, size: ThumbnailSize) -> Thumbnail:
    small = _resize(img, size)
    out = io.BytesIO()
    if source_format == "JPEG":
        small.convert("RGB").save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    else:
        if small.mode not in ("RGB", "RGBA", "L", "LA"):
            small = small.convert("RGBA")
        small.save(out, "PNG", optimize=True)
        content_type = "image/png"
    return Thumbnail(size, out.getvalue(), content_type, small.width, small.height, False)


def _animated(img: Image.Image, size: ThumbnailSize, max_frames: int) -> Thumbnail:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for i, frame in enumerate(ImageSequence.Iterator(img)):
        if i >= max_frames:
            break
        frames.append(_resize(frame.convert("RGBA"), size))
        durations.append(int(frame.info.get("duration", 100)))
    out = io.BytesIO()
    fmt = "WEBP" if img.format == "WEBP" else "GIF"
    frames[0].save(
        out, fmt, save_all=True, append_images=frames[1:], duration=durations,
        loop=img.info.get("loop", 0), disposal=2,
    )
    first = frames[0]
    return Thumbnail(size, out.getvalue(), f"image/{fmt.lower()}", first.width, first.height, True)
