"""Fixtures of the CLI tests."""

import imageio.v3 as iio
import pytest

from jaxstyle import imaging
from jaxstyle.io.images import read_image


@pytest.fixture()
def images(tmp_path, media):
    """A tiny content (27x35 PNG) and style (30x48 JPEG) from the real media."""
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 27, 35)
    style = imaging.resize(read_image(media / "styles" / "starry_night.jpg"), 30, 48)
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.jpg"}
    iio.imwrite(paths["content"], imaging.to_uint8(content))
    iio.imwrite(paths["style"], imaging.to_uint8(style))
    return paths
