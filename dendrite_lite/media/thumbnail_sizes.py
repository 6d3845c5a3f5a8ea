"""What thumbnails are made and what they are made of, without Pillow: the thumbnail service
imports this at start and Pillow (thumbnailer.py, ~3 MiB of RSS and more once its plugins load)
only with the first thumbnail."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ThumbnailSize",
    "Thumbnail",
    "STANDARD_SIZES",
    "THUMBNAILABLE_TYPES",
    "NotThumbnailable",
    "ImageTooLarge",
]

# The content types we try to thumbnail at all (thumbnailer.py decodes these formats only).
THUMBNAILABLE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    width: int
    height: int
    method: str  # crop | scale


# content_repo.md §Thumbnails: "Servers SHOULD produce thumbnails with the following dimensions".
STANDARD_SIZES: tuple[ThumbnailSize, ...] = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


@dataclass(frozen=True, slots=True)
class Thumbnail:
    size: ThumbnailSize  # what it was made for
    data: bytes
    content_type: str
    width: int  # its real dimensions
    height: int
    animated: bool


class NotThumbnailable(Exception):
    """Not an image we decode (wrong format, truncated, corrupt)."""


class ImageTooLarge(Exception):
    """More pixels than `max_pixels`: refused before decoding."""
