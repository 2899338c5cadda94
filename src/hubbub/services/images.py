"""Image decoding for uploads: dimensions, thumbnail, preview and mini preview, with Pillow.

`analyze` is blocking CPU work: callers run it in a thread (`asyncio.to_thread`). It opens only a
few well-known raster formats (never EPS and friends, which would run external programs), rejects
images above a pixel budget before decoding them (decompression bombs), and treats anything Pillow
cannot decode as "not an image", so a corrupt upload is stored as a plain file.

Sizes follow Mattermost: the thumbnail fits 120x100, the preview is at most 1920 wide, the mini
preview (shown while the real image loads) is a 16x16 JPEG; all are JPEG at quality 90.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

THUMBNAIL_SIZE = (120, 100)
PREVIEW_WIDTH = 1920
MINI_PREVIEW_SIZE = (16, 16)
JPEG_QUALITY = 90
# Mattermost's default FileSettings.MaxImageResolution (7680x4320).
MAX_IMAGE_PIXELS = 33_177_600
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


class ImageTooLarge(Exception):
    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"image of {width}x{height} pixels is above the limit")
        self.width = width
        self.height = height


@dataclass(frozen=True, slots=True)
class Rendition:
    """What an uploaded image yields. The JPEG fields are empty when rendering failed."""

    width: int
    height: int
    mime_type: str
    animated: bool
    thumbnail: bytes = b""
    preview: bytes = b""
    mini_preview: bytes = b""

    @property
    def has_preview(self) -> bool:
        return bool(self.thumbnail and self.preview)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited over white (JPEG has no alpha)."""
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _render(image: Image.Image) -> tuple[bytes, bytes, bytes]:
    rgb = _flatten(image)
    thumb = rgb.copy()
    thumb.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    if rgb.width > PREVIEW_WIDTH:
        height = max(1, round(rgb.height * PREVIEW_WIDTH / rgb.width))
        preview = rgb.resize((PREVIEW_WIDTH, height), Image.Resampling.LANCZOS)
    else:
        preview = rgb
    mini = rgb.resize(MINI_PREVIEW_SIZE, Image.Resampling.LANCZOS)
    return _jpeg(thumb), _jpeg(preview), _jpeg(mini)


def analyze(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Rendition | None:
    """The rendition of `data` if it is an image Pillow can read, else None.

    Raises `ImageTooLarge` when the declared size is above `max_pixels`, before decoding.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(0, 0) from None
    except Exception:
        return None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            return None
        if width * height > max_pixels:
            raise ImageTooLarge(width, height)
        fmt = image.format or ""
        mime = Image.MIME.get(fmt, "")
        animated = bool(getattr(image, "is_animated", False))
        try:
            image.load()
        except Exception:
            return None
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception:
            upright = image
        width, height = upright.size
        try:
            thumbnail, preview, mini = _render(upright)
        except Exception:
            return Rendition(width, height, mime, animated)
        return Rendition(width, height, mime, animated, thumbnail, preview, mini)
