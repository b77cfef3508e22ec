import numpy as np
import pytest
from PIL import Image

from sr.errors import UserError
from sr.data.images import list_images, load_rgb

GREY = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)


@pytest.mark.parametrize(
    "mode,make",
    [
        ("L", lambda: Image.fromarray(GREY)),
        ("RGB", lambda: Image.fromarray(np.stack([GREY, 255 - GREY, GREY // 2], axis=2))),
        ("P", lambda: Image.fromarray(np.stack([GREY] * 3, axis=2)).convert("P", palette=Image.Palette.ADAPTIVE)),
        ("CMYK", lambda: Image.fromarray(np.stack([GREY] * 3, axis=2)).convert("CMYK")),
    ],
)
def test_every_mode_loads_as_rgb_uint8(tmp_path, mode, make):
    img = make()
    assert img.mode == mode
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    rgb = load_rgb(path)
    assert rgb.shape == (12, 20, 3) and rgb.dtype == np.uint8
    if mode == "L":
        assert np.array_equal(rgb[..., 0], GREY) and np.array_equal(rgb[..., 2], GREY)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = (GREY.astype(np.uint16) * 257)  # full 16-bit range
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    img.save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    assert np.array_equal(rgb[..., 1], GREY)


def test_a_dark_sixteen_bit_grey_stays_dark(tmp_path):
    values = np.full((8, 8), 200, dtype=np.uint16)  # under 8-bit full scale, but a 16-bit file: 200/65535 is near black
    Image.fromarray(values).save(tmp_path / "dark16.png")
    with Image.open(tmp_path / "dark16.png") as img:
        assert img.mode == "I;16"
    assert load_rgb(tmp_path / "dark16.png").max() == 1  # round(200 / 65535 * 255), not 200


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red where opaque; the stored colour of transparent pixels is ignored
    rgba[:2, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb = load_rgb(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [200, 0, 0]
    assert rgb[3, 3].tolist() == [255, 255, 255]
    la = Image.fromarray(np.stack([GREY, np.full_like(GREY, 0)], axis=2), mode="LA")
    la.save(tmp_path / "la.png")
    assert (load_rgb(tmp_path / "la.png") == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif)
    assert load_rgb(tmp_path / "o.jpg").shape == (30, 10, 3)


def test_bad_files_raise_one_clear_error(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(UserError, match="not an image"):
        load_rgb(tmp_path / "notes.png")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8) + 9).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.png"):
        load_rgb(tmp_path / "cut.png")
    with pytest.raises(UserError, match="no such file"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(UserError, match="folder"):
        load_rgb(tmp_path)


def test_an_unreadable_file_is_not_called_undecodable(tmp_path, monkeypatch):
    # Issue 32: permission denied was reported as "cannot decode image". (Root reads any file, so
    # the denial is the one Pillow's open would raise.)
    Image.fromarray(GREY).save(tmp_path / "locked.png")

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(UserError, match=r"locked.png: cannot read it \(Permission denied\)$"):
        load_rgb(tmp_path / "locked.png")


def test_folders_list_images_only_and_refuse_empty(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".b.png.x1y2.tmp.png").write_bytes(b"")  # what a killed atomic write leaves
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no image files"):
        list_images(empty)
