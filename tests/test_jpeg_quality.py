import io

import numpy as np
import pytest
from PIL import Image

from sr.weights import DEFAULT_WEIGHTS, PHOTO_MAX_QUALITY, PHOTO_WEIGHTS, default_weights
from sr.jpeg_quality import ijg_luma_tables, jpeg_quality


def _noise(size=(24, 40)):
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8))


def _jpeg(image, **save) -> io.BytesIO:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", **save)
    buf.seek(0)
    return buf


def test_every_pillow_quality_is_read_back_exactly():
    image = _noise()
    assert [jpeg_quality(_jpeg(image, quality=q)) for q in range(1, 101)] == list(range(1, 101))


def test_the_tables_follow_libjpeg_scaling():
    tables = ijg_luma_tables()
    assert tables.shape == (100, 64)
    assert tables[0].max() == 255 and (tables[99] == 1).all()  # quality 1: clipped to 8 bits; 100: all ones
    assert (np.diff(tables, axis=0) <= 0).all()  # a higher quality never quantises more coarsely
    assert tables[49].min() == 10 and tables[49].max() == 121  # Annex K's luminance table, unscaled at 50


def test_a_table_of_another_encoder_gets_the_nearest_quality():
    # Pillow's "web_high" preset: custom tables, close to libjpeg's at a high quality.
    assert 80 <= jpeg_quality(_jpeg(_noise(), qtables="web_high")) <= 95
    assert jpeg_quality(_jpeg(_noise(), qtables="web_low")) < jpeg_quality(_jpeg(_noise(), qtables="web_high"))


def test_not_a_jpeg_or_not_readable_is_none(tmp_path):
    _noise().save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    assert jpeg_quality(tmp_path / "a.png") is None
    assert jpeg_quality(tmp_path / "b.jpg") is None
    assert jpeg_quality(tmp_path / "missing.jpg") is None


@pytest.mark.parametrize("quality, expected", [(30, PHOTO_WEIGHTS), (PHOTO_MAX_QUALITY, PHOTO_WEIGHTS),
                                               (PHOTO_MAX_QUALITY + 1, DEFAULT_WEIGHTS), (100, DEFAULT_WEIGHTS)])
def test_default_weights_follow_the_quality(tmp_path, quality, expected):
    _noise().save(tmp_path / "x.jpg", quality=quality)
    assert default_weights(tmp_path / "x.jpg")[0] == expected


def test_default_weights_of_a_png_is_the_clean_model(tmp_path):
    _noise().save(tmp_path / "x.png")
    assert default_weights(tmp_path / "x.png")[0] == DEFAULT_WEIGHTS


@pytest.mark.parametrize("quality, expected", [(90, PHOTO_WEIGHTS), (91, DEFAULT_WEIGHTS)])
def test_the_photo_threshold_is_the_quality_the_validation_table_chose(tmp_path, quality, expected):
    # Stated, not read back from PHOTO_MAX_QUALITY: the validation table chose 90 (JPEGs saved at
    # 90 or lower get the photo model); a change of the constant must change this test too.
    _noise().save(tmp_path / "x.jpg", quality=quality)
    assert default_weights(tmp_path / "x.jpg")[0] == expected
