import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import torch

from sr.enlarge import enlarge, fill_transparent
from sr.errors import UserError
from sr.imresize import imresize
from sr.photo import Photo, read_photo
from sr.photo_write import pick_format, write_image, write_photo
from sr.upscaler import Upscaler

RNG = np.random.default_rng(0)


class Nearest(torch.nn.Module):
    """A fake model that changes no value: each pixel becomes a 2 x 2 block."""

    def forward(self, x):
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


NEAREST, BICUBIC = Upscaler(Nearest(), arch="nearest", scale=2), Upscaler.bicubic(2)


def nearest(pixels, scale=2):
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def enlarged(photo: Photo, path, up: Upscaler = NEAREST, outscale=None, alpha_upsampler="bicubic", **write) -> list[str]:
    """``photo`` through the enlarger, written to ``path``; the notes."""
    fmt = pick_format(path)
    image, kind = enlarge(up, photo, fmt, outscale, alpha_upsampler)
    return list(kind.notes) + write_image(path, image, photo, fmt, **write)


def round_trip(tmp_path, img, name="in.png", out="out.png", up=NEAREST, **write):
    img.save(tmp_path / name)
    notes = enlarged(read_photo(tmp_path / name, compact=True), tmp_path / out, up, **write)
    return Image.open(tmp_path / out), notes


def png16(path, array, colour_type):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_round_trip_keeps_values(tmp_path):
    rgb = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    out, notes = round_trip(tmp_path, Image.fromarray(rgb))
    assert out.mode == "RGB" and out.size == (22, 18) and notes == []
    assert np.array_equal(np.asarray(out), nearest(rgb))


def test_rgba_keeps_alpha_and_has_no_dark_halo(tmp_path):
    rgba = np.zeros((12, 12, 4), dtype=np.uint8)
    rgba[:, :6] = (220, 30, 10, 255)  # opaque red on the left; right half transparent black
    out, _ = round_trip(tmp_path, Image.fromarray(rgba), up=BICUBIC)
    assert out.mode == "RGBA" and out.size == (24, 24)
    pixels = np.asarray(out).astype(int)
    assert (pixels[:, :8, 3] == 255).all() and (pixels[:, 16:, 3] == 0).all()
    edge = pixels[..., 3] > 0
    assert 0 < pixels[edge, 3].min() < 255  # bicubic gives a soft edge...
    # ...and where it is visible the colour is still red: the black under alpha 0 did not bleed in.
    assert np.abs(pixels[edge, :3] - [220, 30, 10]).max() <= 1


def test_fill_transparent_changes_only_hidden_pixels():
    rgb = RNG.uniform(0, 255, (7, 10, 3))
    alpha = np.zeros((7, 10))
    alpha[2:4, 3:5] = 128
    rgb[2:4, 3:5] = (10, 20, 30)
    filled = fill_transparent(rgb, alpha)
    assert np.array_equal(filled[2:4, 3:5], rgb[2:4, 3:5])
    assert np.allclose(filled, (10, 20, 30))  # every hidden pixel takes the only visible colour
    rgb[2, 3] = (200, 100, 0)
    filled = fill_transparent(rgb, alpha)
    assert np.array_equal(filled[2:4, 3:5], rgb[2:4, 3:5])  # visible pixels keep their exact values
    # holes get means of visible colours (here the 4x4 pyramid block holding (2, 3) and (3, 3))
    assert np.allclose(filled[1, 2], rgb[2:4, 3].mean(axis=0))
    visible = rgb[2:4, 3:5].reshape(4, 3)
    assert (filled >= visible.min(axis=0) - 1e-9).all() and (filled <= visible.max(axis=0) + 1e-9).all()


def test_alpha_by_model_uses_the_model(tmp_path):
    photo = Photo(rgb=np.full((4, 4, 3), 100.0), alpha=np.tile([0.0, 255.0], (4, 2)))
    enlarged(photo, tmp_path / "model.png", alpha_upsampler="model")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "model.png"))[..., 3], nearest(photo.alpha))
    enlarged(photo, tmp_path / "bicubic.png")
    expected = np.round(np.clip(imresize(photo.alpha, 2), 0, 255))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "bicubic.png"))[..., 3], expected)


def test_grey_and_grey_alpha_stay_grey(tmp_path):
    grey = RNG.integers(0, 256, (8, 6), dtype=np.uint8)
    out, _ = round_trip(tmp_path, Image.fromarray(grey))
    assert out.mode == "L" and np.array_equal(np.asarray(out), nearest(grey))
    la = np.stack([grey, np.full_like(grey, 200)], axis=2)
    out, _ = round_trip(tmp_path, Image.fromarray(la), name="la.png", out="la_out.png")
    assert out.mode == "LA" and np.array_equal(np.asarray(out)[..., 0], nearest(grey))
    assert (np.asarray(out)[..., 1] == 200).all()


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_grey_is_computed_in_sixteen_bits(tmp_path, ext):
    # Neighbours 1..5 apart: all within one 8-bit step (257), so an 8-bit copy would merge them.
    values = (30000 + np.arange(48).reshape(6, 8) * np.array([1, 2, 3, 5, 1, 1, 2, 3])).astype(np.uint16)
    values[0, 0], values[-1, -1] = 0, 65535
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    img.save(tmp_path / f"in.{ext}")
    photo = read_photo(tmp_path / f"in.{ext}", compact=True)
    assert photo.bits == 16 and photo.grey
    enlarged(photo, tmp_path / f"out.{ext}")
    out = Image.open(tmp_path / f"out.{ext}")
    assert out.mode == "I;16"
    assert np.array_equal(np.asarray(out), nearest(values))  # every 16-bit value back exactly
    assert len(np.unique(np.asarray(out))) == len(np.unique(values)) > 40


def test_dark_sixteen_bit_grey_is_not_stretched(tmp_path):
    values = np.arange(200, dtype=np.uint16).reshape(10, 20)  # a 16-bit file whose values stay below 256
    Image.fromarray(values).save(tmp_path / "dark.png")
    assert read_photo(tmp_path / "dark.png").rgb.max() == pytest.approx(199 / 65535 * 255)


def test_sixteen_bit_colour_is_read_as_eight_bit_with_a_note(tmp_path):
    rgb16 = RNG.integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    png16(tmp_path / "rgb48.png", rgb16, colour_type=2)
    photo = read_photo(tmp_path / "rgb48.png")
    assert photo.bits == 8 and not photo.grey and "8 bits" in photo.notes[0]
    assert np.array_equal(photo.rgb, rgb16 >> 8)  # Pillow keeps the high byte
    la16 = RNG.integers(0, 65536, (4, 5, 2)).astype(np.uint16)
    png16(tmp_path / "la32.png", la16, colour_type=4)
    photo = read_photo(tmp_path / "la32.png")  # Pillow says RGBA; it is grey
    assert photo.grey and photo.alpha is not None and photo.notes
    write_photo(tmp_path / "la_out.png", photo)
    assert Image.open(tmp_path / "la_out.png").mode == "LA"


def test_sixteen_bit_and_alpha_into_jpeg_come_with_notes(tmp_path):
    photo = Photo(rgb=np.full((4, 4, 3), 100.0), grey=True, bits=16)
    notes = write_photo(tmp_path / "g.jpg", photo)
    assert Image.open(tmp_path / "g.jpg").mode == "L" and "8 bits" in notes[0]
    photo = Photo(rgb=np.zeros((4, 4, 3)), alpha=np.zeros((4, 4)))
    notes = write_photo(tmp_path / "a.jpg", photo)
    assert "white" in notes[0] and (np.asarray(Image.open(tmp_path / "a.jpg")) >= 250).all()


def test_exif_orientation_applied_and_not_applied_twice(tmp_path):
    img = Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    exif[0x010F] = "Camera"
    img.save(tmp_path / "o.jpg", exif=exif)
    photo = read_photo(tmp_path / "o.jpg", compact=True)
    assert photo.size == (30, 10)
    enlarged(photo, tmp_path / "out.jpg")
    out = Image.open(tmp_path / "out.jpg")
    assert out.size == (20, 60)
    assert 0x0112 not in out.getexif() and out.getexif()[0x010F] == "Camera"


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tiff"])
def test_icc_profile_is_carried_over(tmp_path, ext):
    ImageCms = pytest.importorskip("PIL.ImageCms")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "in.png", icc_profile=icc)
    photo = read_photo(tmp_path / "in.png", compact=True)
    assert photo.icc == icc
    enlarged(photo, tmp_path / f"out.{ext}")
    assert Image.open(tmp_path / f"out.{ext}").info.get("icc_profile") == icc
    # an RGB profile cannot describe grey pixels: dropped, with a note (WebP writes grey as RGB: kept)
    notes = write_photo(tmp_path / f"grey.{ext}", Photo(rgb=np.zeros((4, 4, 3)), grey=True, icc=icc))
    kept = Image.open(tmp_path / f"grey.{ext}").info.get("icc_profile") == icc
    assert kept if ext == "webp" else ("ICC" in notes[-1] and not kept)


def test_format_by_extension_or_by_name(tmp_path):
    photo = Photo(rgb=RNG.uniform(0, 255, (8, 8, 3)), alpha=np.full((8, 8), 128.0))
    for name, expected in [("a.png", "PNG"), ("a.jpeg", "JPEG"), ("a.JPG", "JPEG"), ("a.webp", "WEBP"), ("a.tif", "TIFF")]:
        write_photo(tmp_path / name, photo)
        assert Image.open(tmp_path / name).format == expected
    write_photo(tmp_path / "b.png", photo, format="webp")
    out = Image.open(tmp_path / "b.png")
    assert out.format == "WEBP" and out.mode == "RGBA"
    with pytest.raises(UserError, match="png, jpg, webp or tiff"):
        write_photo(tmp_path / "a.bmp", photo)
    with pytest.raises(UserError, match="png, jpg, webp or tiff"):
        write_photo(tmp_path / "a.png", photo, format="gif")
    assert not (tmp_path / "a.bmp").exists()


def test_quality_changes_lossy_size_and_is_checked(tmp_path):
    photo = Photo(rgb=RNG.uniform(0, 255, (64, 64, 3)))
    for ext in ("jpg", "webp"):
        write_photo(tmp_path / f"low.{ext}", photo, quality=20)
        write_photo(tmp_path / f"high.{ext}", photo)  # default 95 / 90
        assert (tmp_path / f"low.{ext}").stat().st_size < (tmp_path / f"high.{ext}").stat().st_size / 2
    assert "ignored" in write_photo(tmp_path / "q.png", photo, quality=50)[0]
    with pytest.raises(UserError, match="1..100"):
        write_photo(tmp_path / "q.jpg", photo, quality=0)


def test_other_modes(tmp_path):
    base = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    p = Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    photo = read_photo(tmp_path / "p.png")
    assert photo.alpha is not None and not photo.grey
    Image.fromarray(base).convert("CMYK").save(tmp_path / "c.tif")
    photo = read_photo(tmp_path / "c.tif")
    assert photo.rgb.shape == (6, 6, 3) and photo.alpha is None and not photo.grey
    Image.fromarray(np.linspace(0, 1, 36, dtype=np.float32).reshape(6, 6)).save(tmp_path / "f.tif")
    photo = read_photo(tmp_path / "f.tif")
    assert photo.grey and photo.bits == 16 and photo.rgb.max() == pytest.approx(255)


def test_broken_files_are_user_errors(tmp_path):
    Image.fromarray(RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:200])
    (tmp_path / "text.png").write_text("not an image")
    for name, message in [("cut.png", "cannot decode"), ("text.png", "not an image"), ("missing.png", "no such file")]:
        with pytest.raises(UserError, match=message):
            read_photo(tmp_path / name)
    with pytest.raises(UserError, match="folder"):
        read_photo(tmp_path)


def test_outscale_gives_the_exact_size(tmp_path):
    photo = Photo(rgb=RNG.uniform(0, 255, (13, 17, 3)), alpha=np.full((13, 17), 255.0))
    for outscale, size in [(3.3, (43, 56)), (1.5, (20, 26)), (2.5, (33, 43)), (2, (26, 34))]:
        image, _ = enlarge(BICUBIC, photo, "png", outscale)
        assert image.size == size[::-1] and image.mode == "RGBA"
    image, _ = enlarge(BICUBIC, photo, "png", 2)
    assert np.array_equal(np.asarray(image)[..., :3], np.round(np.clip(imresize(photo.rgb, 2), 0, 255)))
    with pytest.raises(UserError, match="greater than 1"):
        enlarge(BICUBIC, photo, "png", 1)


def test_imresize_to_a_size_is_matlab_imresize():
    img = RNG.uniform(0, 255, (10, 14, 3))
    assert np.array_equal(imresize(img, size=(30, 42)), imresize(img, 3))
    assert np.array_equal(imresize(img, size=(5, 7)), imresize(img, 0.5))
    assert np.array_equal(imresize(img, size=(10, 28))[:, :, 0], imresize(img[:, :, 0], size=(10, 28)))
    assert np.array_equal(imresize(img, size=(10, 14)), img)  # nothing to resize: left as it is
    with pytest.raises(ValueError, match="either scale or size"):
        imresize(img, 2, size=(20, 28))
