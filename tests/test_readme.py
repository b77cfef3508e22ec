"""The README's Python example runs as written: its imports and calls are the library's."""

import ast
import re
from pathlib import Path

from PIL import Image

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_python_example_runs(tmp_path, monkeypatch, data_root, photo, capsys):
    block = re.search(r"<!-- example:start -->\s*```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "data").symlink_to(data_root.resolve())
    monkeypatch.chdir(tmp_path)  # the example reads ./data, where python -m sr.fetch puts the sets
    Image.open(photo).convert("RGB").save(tmp_path / "photo.jpg", quality=85)
    exec(compile(block, "README example", "exec"), {})
    with Image.open(tmp_path / "photo_x3.png") as out, Image.open(tmp_path / "photo.jpg") as src:
        assert out.size == (src.width * 3, src.height * 3)
    scores = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert 28.3 < scores["psnr"] < 28.7 and 0.9 < scores["ssim"] < 0.95  # fsrcnn_x3 on butterfly: 28.47 / 0.924
