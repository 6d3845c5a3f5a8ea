"""Thumbnails: which one answers a request, made in a bounded thread pool, cached.

- Decoding runs in a ThreadPoolExecutor of `media.thumbnail_workers` threads: the event loop
  never decodes an image, and at most N images are decoded at once (each holds one decoded,
  draft-reduced image: a few MB), however many requests arrive. A request's header read (size,
  animation) runs in the default executor, so cached thumbnails never wait behind decoding.
- The standard sizes (thumbnail_sizes.STANDARD_SIZES) are made at upload, from one decode. A request
  is answered by the smallest standard size of its method at least as big as asked; a bigger or
  other size is made on demand and cached, at most `MAX_THUMBNAILS_PER_MEDIA` per media (past
  that the largest cached one answers: a client looping over sizes cannot fill the disk).
- Content no bigger than asked is answered with the original (spec: never upscale; "servers
  should return the original content rather than thumbnail it").
- Requests for the same missing thumbnail at once share one making of it (`_making`,
  single_flight.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.repository import MediaRepository, MediaRow, ThumbnailRow
from dendrite_lite.media.single_flight import SingleFlight
from dendrite_lite.media.thumbnail_sizes import (
    STANDARD_SIZES,
    THUMBNAILABLE_TYPES,
    ImageTooLarge,
    NotThumbnailable,
    Thumbnail,
    ThumbnailSize,
)

__all__ = ["Thumbnails", "MAX_THUMBNAILS_PER_MEDIA", "choose_size"]

log = logging.getLogger(__name__)

MAX_THUMBNAILS_PER_MEDIA = 16
T = TypeVar("T")


def choose_size(width: int, height: int, method: str, image: tuple[int, int]) -> ThumbnailSize | None:
    """The size to answer (width, height, method) for an image of these upright dimensions;
    None when the original is no bigger than asked."""
    if image[0] <= width and image[1] <= height:
        return None
    fitting = [
        s for s in STANDARD_SIZES if s.method == method and s.width >= width and s.height >= height
    ]
    if fitting:
        return min(fitting, key=lambda s: s.width * s.height)
    return ThumbnailSize(width, height, method)


class Thumbnails:
    def __init__(self, repo: MediaRepository, *, workers: int, max_pixels: int) -> None:
        self._repo = repo
        self._max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail")
        self._making: SingleFlight[tuple[str, str, ThumbnailSize, bool], ThumbnailRow] = SingleFlight()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: functools.partial[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def make_standard(self, media: MediaRow) -> None:
        """The standard thumbnails of a fresh upload (nothing for non-images; a failure is
        logged: the upload itself stands)."""
        if not _thumbnailable(media) or media.sha256 is None:
            return
        path = self._repo.path(media.sha256)
        try:
            width, height, _ = await self._run(
                functools.partial(_image_info, path, max_pixels=self._max_pixels)
            )
            # Sizes the image is no bigger than are answered by the original: not made.
            sizes = tuple(
                s for s in STANDARD_SIZES
                if choose_size(s.width, s.height, s.method, (width, height)) is not None
            )
            if not sizes:
                return
            made = await self._run(
                functools.partial(_make_thumbnails, path, sizes, max_pixels=self._max_pixels)
            )
        except (NotThumbnailable, ImageTooLarge) as e:
            log.info("no thumbnails for mxc://%s/%s: %s", media.server_name, media.media_id, e)
            return
        for thumb in made:
            await self._save(media, thumb)

    async def choose(
        self, media: MediaRow, width: int, height: int, method: str, animated: bool
    ) -> ThumbnailRow | None:
        """The thumbnail answering a request, made now if need be; None when the original
        answers it (no bigger than asked).

        400 M_UNKNOWN for content we do not thumbnail (not an image, SVG, corrupt), 413
        M_TOO_LARGE for an image over media.max_image_pixels."""
        if not _thumbnailable(media) or media.sha256 is None:
            raise _refusal(NotThumbnailable(media.content_type))
        path = self._repo.path(media.sha256)
        try:
            # A header read, in the default executor: a request a cached thumbnail answers
            # never queues behind the pool's decoding.
            img_w, img_h, is_animated = await asyncio.to_thread(
                _image_info, path, max_pixels=self._max_pixels
            )
        except (ImageTooLarge, NotThumbnailable) as e:
            raise _refusal(e) from None
        size = choose_size(width, height, method, (img_w, img_h))
        if size is None:
            return None
        animated = animated and is_animated
        existing = await self._repo.thumbnails(media.server_name, media.media_id)
        for thumb in existing:
            if (thumb.width, thumb.height, thumb.method, thumb.animated) == (
                size.width, size.height, size.method, animated
            ):
                return thumb
        if len(existing) >= MAX_THUMBNAILS_PER_MEDIA:
            return max(existing, key=lambda t: (t.animated == animated, t.width * t.height))
        return await self._make_one(media, path, size, animated)

    async def _make_one(
        self, media: MediaRow, path: Path, size: ThumbnailSize, animated: bool
    ) -> ThumbnailRow:
        async def make() -> ThumbnailRow:
            try:
                made = await self._run(
                    functools.partial(
                        _make_thumbnails, path, (size,), max_pixels=self._max_pixels,
                        animated=animated,
                    )
                )
            except (ImageTooLarge, NotThumbnailable) as e:
                raise _refusal(e) from None
            return await self._save(media, made[0])

        # Its own task: a client hanging up neither cancels it for the others waiting nor
        # leaves it half done.
        return await self._making.run((media.server_name, media.media_id, size, animated), make)

    async def _save(self, media: MediaRow, thumb: Thumbnail) -> ThumbnailRow:
        return await self._repo.add_thumbnail(
            media.server_name, media.media_id, thumb.data, width=thumb.size.width,
            height=thumb.size.height, method=thumb.size.method, animated=thumb.animated,
            content_type=thumb.content_type,
        )


# Run in the pool's threads. Pillow is imported there, at the first thumbnail: a server that
# never makes one never loads it (thumbnail_sizes.py).
def _image_info(path: Path, *, max_pixels: int) -> tuple[int, int, bool]:
    from dendrite_lite.media.thumbnailer import image_info

    return image_info(path, max_pixels=max_pixels)


def _make_thumbnails(
    path: Path, sizes: tuple[ThumbnailSize, ...], *, max_pixels: int, animated: bool = False
) -> list[Thumbnail]:
    from dendrite_lite.media.thumbnailer import make_thumbnails

    return make_thumbnails(path, sizes, max_pixels=max_pixels, animated=animated)


def _thumbnailable(media: MediaRow) -> bool:
    content_type = (media.content_type or "").split(";", 1)[0].strip().lower()
    return content_type in THUMBNAILABLE_TYPES


def _refusal(e: ImageTooLarge | NotThumbnailable) -> MatrixError:
    # authed-content-repo.yaml: 413 M_TOO_LARGE for an image too large to thumbnail, 400 for
    # content the server cannot thumbnail.
    if isinstance(e, ImageTooLarge):
        return MatrixError(Errcode.TOO_LARGE, "The image is too large to thumbnail")
    return MatrixError(Errcode.UNKNOWN, "Cannot generate thumbnails for this content", status=400)
