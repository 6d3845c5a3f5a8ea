"""Test images made with Pillow (no binary fixtures): photos, EXIF-rotated, animated, bombs."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

__all__ = ["jpeg", "png", "rotated_jpeg", "animated_gif", "png_bomb", "SVG"]

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<script>alert(1)</script><rect width="100" height="100" fill="red"/></svg>'
)


def jpeg(width: int, height: int, *, quality: int = 85) -> bytes:
    """A photo-like JPEG: a gradient, so it compresses like a real one rather than to nothing."""
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def png(width: int, height: int, colour: tuple[int, int, int, int] = (0, 128, 255, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def rotated_jpeg() -> bytes:
    """400x200 as stored, top half red and bottom half blue, with EXIF orientation 6 (rotate 90
    degrees clockwise to show): upright it is 200x400, right half red, left half blue."""
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 400, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()


def animated_gif(frames: int = 3, size: tuple[int, int] = (200, 200)) -> bytes:
    images = [Image.new("RGB", size, (80 * i % 256, 0, 0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return out.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: ~50 KB on disk, 400 megapixels decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
