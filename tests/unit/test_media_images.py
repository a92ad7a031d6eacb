"""The picture pipeline (media/images.py): sniffing, bombs, re-encoding, metadata removal."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from media.errors import FileTooLarge, MediaErrorCode
from media.images import (
    MAX_SOURCE_SIDE,
    MiB,
    PictureKind,
    process_picture,
    sniff_image_type,
)
from media.pictures import Pictures, load_or_create_signing_keys
from media.signing import UrlSigner
from media.storage import LocalDiskStorage


def encoded(size: tuple[int, int], fmt: str, mode: str = "RGB", **save: object) -> bytes:
    image = Image.new(mode, size, "red" if mode != "P" else 1)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def code_of(data: bytes, kind: PictureKind = PictureKind.AVATAR) -> MediaErrorCode:
    with pytest.raises(Exception) as caught:
        process_picture(data, kind)
    return caught.value.code  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_the_four_types_are_recognised_by_their_bytes(fmt: str, expected: str) -> None:
    assert sniff_image_type(encoded((4, 4), fmt)[:32]) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, I am text.png",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"<!DOCTYPE html><html>",
        b"%PDF-1.7\n",
        b"BM" + b"\x00" * 30,  # BMP: a real image, not accepted
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF, but audio
        b"MZ\x90\x00",  # an executable
    ],
)
def test_everything_else_is_unsupported(head: bytes) -> None:
    assert sniff_image_type(head[:32]) is None
    assert code_of(head + b"\x00" * 64) == MediaErrorCode.UNSUPPORTED_IMAGE_TYPE


def test_the_name_and_claimed_type_do_not_matter_only_bytes() -> None:
    # A BMP is refused even though Pillow could decode it; a PNG is a PNG whatever it was called.
    assert code_of(encoded((8, 8), "BMP")) == MediaErrorCode.UNSUPPORTED_IMAGE_TYPE
    assert process_picture(encoded((8, 8), "PNG"), PictureKind.AVATAR).content_type == "image/webp"


def test_truncated_and_corrupt_images_are_undecodable() -> None:
    png = encoded((64, 64), "PNG")
    assert code_of(png[:40]) == MediaErrorCode.IMAGE_UNDECODABLE
    assert code_of(b"\x89PNG\r\n\x1a\n" + b"\xff" * 100) == MediaErrorCode.IMAGE_UNDECODABLE
    assert code_of(b"\xff\xd8\xff\xe0" + b"\x00" * 100) == MediaErrorCode.IMAGE_UNDECODABLE


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming huge dimensions, with almost no data: decoding it would allocate them."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [(50_000, 50_000), (MAX_SOURCE_SIDE + 1, 10), (10, MAX_SOURCE_SIDE + 1), (7_000, 7_000)],
)
def test_bombs_and_huge_dimensions_are_refused_before_decoding(width: int, height: int) -> None:
    assert code_of(_png_claiming(width, height)) == MediaErrorCode.IMAGE_DIMENSIONS_TOO_LARGE


def test_a_real_compressed_bomb_is_refused() -> None:
    bomb = encoded((10_000, 10_000), "PNG", mode="1", optimize=True)  # 100 MP of zeros in a few KB
    assert len(bomb) < 100_000
    assert code_of(bomb) == MediaErrorCode.IMAGE_DIMENSIONS_TOO_LARGE


def test_size_limits_per_kind() -> None:
    assert PictureKind.AVATAR.max_bytes == 8 * MiB
    assert PictureKind.BANNER.max_bytes == 10 * MiB
    assert PictureKind.SERVER_PICTURE.max_bytes == 8 * MiB
    assert PictureKind.SERVER_BANNER.max_bytes == 10 * MiB
    with pytest.raises(FileTooLarge):
        process_picture(b"\x89PNG\r\n\x1a\n" + b"\x00" * (8 * MiB), PictureKind.AVATAR)


@pytest.mark.parametrize(
    ("kind", "source", "expected"),
    [
        (PictureKind.AVATAR, (2000, 1000), (512, 256)),
        (PictureKind.AVATAR, (100, 50), (100, 50)),  # never enlarged
        (PictureKind.SERVER_PICTURE, (600, 900), (341, 512)),
        (PictureKind.BANNER, (4000, 1000), (1920, 480)),
        (PictureKind.SERVER_BANNER, (1920, 1200), (1728, 1080)),
    ],
)
def test_pictures_are_shrunk_to_fit_their_kind(
    kind: PictureKind, source: tuple[int, int], expected: tuple[int, int]
) -> None:
    picture = process_picture(encoded(source, "JPEG"), kind)
    decoded = Image.open(io.BytesIO(picture.data))
    assert decoded.format == "WEBP" and decoded.size == expected == (picture.width, picture.height)


def test_metadata_is_gone_and_orientation_applied() -> None:
    image = Image.new("RGB", (300, 100), "blue")
    exif = Image.Exif()
    exif[0x010F] = "BeepCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"where I live")
    picture = process_picture(out.getvalue(), PictureKind.AVATAR)
    decoded = Image.open(io.BytesIO(picture.data))
    assert decoded.size == (100, 300)  # upright
    assert not decoded.getexif()
    assert "icc_profile" not in decoded.info and "xmp" not in decoded.info
    assert b"BeepCam" not in picture.data and b"where I live" not in picture.data


def test_transparency_survives_and_animations_keep_their_first_frame() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (20, 20), (255, 0, 0, 100)).save(out, format="PNG")
    decoded = Image.open(io.BytesIO(process_picture(out.getvalue(), PictureKind.AVATAR).data))
    assert decoded.mode == "RGBA" and decoded.getpixel((3, 3))[3] < 200  # type: ignore[index]
    frames = [Image.new("RGB", (30, 20), color) for color in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    decoded = Image.open(io.BytesIO(process_picture(out.getvalue(), PictureKind.AVATAR).data))
    assert getattr(decoded, "n_frames", 1) == 1
    red, green, blue = decoded.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_trailing_bytes_are_not_kept() -> None:
    polyglot = encoded((16, 16), "PNG") + b"<script>alert(1)</script>"
    assert b"<script>" not in process_picture(polyglot, PictureKind.AVATAR).data


async def test_pictures_store_sign_and_delete(tmp_path: Path) -> None:
    spec = load_or_create_signing_keys("", tmp_path / "keys")
    assert spec == load_or_create_signing_keys("", tmp_path / "keys")  # created once, then read
    assert load_or_create_signing_keys("k9:abc", tmp_path / "other") == "k9:abc"
    storage = LocalDiskStorage(tmp_path / "media", fsync=False)
    pictures = Pictures(
        storage, UrlSigner.from_spec(spec, base_url="http://x/media/files"), url_ttl_seconds=900
    )
    key = await pictures.store(PictureKind.AVATAR, "users", encoded((10, 10), "PNG"))
    assert key.startswith("users/") and (await storage.stat(key)).content_type == "image/webp"
    url = pictures.url(key)
    assert url and url.startswith(f"http://x/media/files/{key}?") and "disp=inline" in url
    assert pictures.url(None) is None
    await pictures.delete(key, None, "users/" + "0" * 32)  # missing ones are not an error
    assert not await storage.exists(key)


def test_picture_errors_speak_french_too() -> None:
    from media.images import ImageTooLarge, UnsupportedImageType
    from subgraphs.kernel.i18n import translate

    assert translate(UnsupportedImageType().message, "fr") == "Envoyez une image PNG, JPEG, GIF ou WebP."
    assert translate(ImageTooLarge().message, "fr").startswith("L'image est trop grande")
    assert translate("The file is larger than 8 MiB.", "fr") == "Le fichier dépasse 8 Mio."
