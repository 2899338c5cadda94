"""Images for avatars and custom emoji, with Pillow: pure functions from bytes to bytes.

- `default_avatar`: the picture of a user who never uploaded one, their initials in white on a
  colour chosen from the user id, so it is the same on every node and every call.
- `profile_picture`: an uploaded picture made upright, cropped to a centred square and scaled to
  128x128 PNG (Mattermost's size).
- `emoji_image`: an uploaded emoji checked (a real image, at most 1028x1028) and, when larger
  than 128x128, shrunk to fit; animated GIFs stay animated.

Blocking CPU work: callers run them in a thread. Only a few raster formats are opened (never EPS
and friends, which run external programs); the pixel budget is checked before decoding.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageSequence

from hubbub.errors import AppError
from hubbub.services.images import FORMATS, MAX_IMAGE_PIXELS

AVATAR_SIZE = 128
EMOJI_SIZE = 128
EMOJI_MAX_ORIGINAL = 1028  # Mattermost's MaxEmojiOriginalWidth/Height
_FONT_SIZE = 56

# Mid-tone colours that white text reads well on.
_PALETTE = (
    (0x1F, 0x6F, 0xB2),
    (0x2E, 0x8B, 0x57),
    (0xB0, 0x3A, 0x2E),
    (0x8E, 0x44, 0xAD),
    (0xD3, 0x54, 0x00),
    (0x16, 0xA0, 0x85),
    (0xC0, 0x39, 0x7B),
    (0x34, 0x49, 0x5E),
    (0x7D, 0x6B, 0x1E),
    (0x27, 0x6E, 0x8A),
    (0x6C, 0x5C, 0xE7),
    (0xA9, 0x32, 0x26),
)


def initials(username: str, first_name: str = "", last_name: str = "") -> str:
    """Up to two letters: first and last name's, else the username's first character."""
    if first_name.strip() and last_name.strip():
        return (first_name.strip()[0] + last_name.strip()[0]).upper()
    name = first_name.strip() or username
    return name[:1].upper() or "?"


def colour_for(user_id: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return _PALETTE[int.from_bytes(digest[:4], "big") % len(_PALETTE)]


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_SIZE)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def default_avatar(user_id: str, letters: str) -> bytes:
    image = Image.new("RGB", (AVATAR_SIZE, AVATAR_SIZE), colour_for(user_id))
    draw = ImageDraw.Draw(image)
    centre = AVATAR_SIZE / 2
    draw.text((centre, centre), letters, fill=(255, 255, 255), font=_font(), anchor="mm")
    return _png(image)


def _open(data: bytes, error: AppError) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Exception:
        raise error from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise error
    return image


def profile_picture(data: bytes) -> bytes:
    """The uploaded picture as Mattermost stores it: upright, centre-cropped, 128x128 PNG."""
    decode_error = AppError(
        "api.user.upload_profile_user.decode.app_error",
        "Unable to decode the profile image.",
        400,
    )
    try:
        image = _open(data, decode_error)
    except Image.DecompressionBombError:
        raise _too_many_pixels() from None
    with image:
        if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:
            raise _too_many_pixels()
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            square = ImageOps.fit(
                upright.convert("RGBA"), (AVATAR_SIZE, AVATAR_SIZE), Image.Resampling.LANCZOS
            )
        except Exception:
            raise decode_error from None
        return _png(square)


def _too_many_pixels() -> AppError:
    return AppError(
        "api.user.upload_profile_user.check_image_limits.app_error",
        "Image limits check failed. Resolution is too high.",
        400,
    )


def emoji_image(data: bytes) -> bytes:
    """The bytes to store for a new emoji: the upload itself when it is small enough, else the
    upload shrunk to fit 128x128 (PNG, or GIF with every frame for an animated one)."""
    not_image = AppError(
        "api.emoji.upload.image.app_error",
        "Unable to create the emoji. File must be a PNG, JPEG, or GIF.",
        400,
    )
    try:
        image = _open(data, not_image)
    except Image.DecompressionBombError:
        raise _emoji_too_large() from None
    with image:
        width, height = image.size
        if width > EMOJI_MAX_ORIGINAL or height > EMOJI_MAX_ORIGINAL:
            raise _emoji_too_large()
        try:
            image.load()
        except Exception:
            raise not_image from None
        if width <= EMOJI_SIZE and height <= EMOJI_SIZE:
            return data
        if image.format == "GIF" and getattr(image, "is_animated", False):
            frames = []
            for frame in ImageSequence.Iterator(image):
                copy = frame.convert("RGBA")
                copy.thumbnail((EMOJI_SIZE, EMOJI_SIZE), Image.Resampling.LANCZOS)
                frames.append(copy)
            out = io.BytesIO()
            frames[0].save(
                out,
                "GIF",
                save_all=True,
                append_images=frames[1:],
                loop=image.info.get("loop", 0),
                duration=image.info.get("duration", 100),
                disposal=2,
            )
            return out.getvalue()
        shrunk = image.convert("RGBA")
        shrunk.thumbnail((EMOJI_SIZE, EMOJI_SIZE), Image.Resampling.LANCZOS)
        return _png(shrunk)


def _emoji_too_large() -> AppError:
    return AppError(
        "api.emoji.upload.large_image.too_large.app_error",
        f"Unable to create emoji. Image must be less than {EMOJI_MAX_ORIGINAL} by "
        f"{EMOJI_MAX_ORIGINAL} pixels.",
        400,
    )


def image_mime(data: bytes) -> str:
    """`image/png`, `image/gif`, ... for stored image bytes; empty if they are no image."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            return Image.MIME.get(image.format or "", "")
    except Exception:
        return ""
