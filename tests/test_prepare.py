import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

import prepare_h5
from sr.data.h5 import PatchDataset, held_out
from sr.data.degradation import downscale, mod_crop, to_planes
from sr.cli import run
from sr.errors import UserError
from sr.data.images import load_rgb, list_images
from sr.data.packing import PAPER_RESCALE, Packing, choose_images
from tests.conftest import ROOT, make_h5


def _expected_patches(folder, scale, patch, stride):
    n = 0
    for path in list_images(folder):
        h, w = mod_crop(load_rgb(path), scale).shape[:2]
        if min(h, w) >= patch:
            n += ((h - patch) // stride + 1) * ((w - patch) // stride + 1)
    return n


def test_upsampled_file_layout_counts_and_attrs(h5_x3, image_folders):
    train, evaluation = h5_x3
    with h5py.File(train) as f:
        assert f["lr"].dtype == np.uint8 and f["hr"].dtype == np.uint8
        assert f["lr"].shape[1:] == f["hr"].shape[1:] == (1, 33, 33)
        assert f["lr"].chunks[0] == 64
        assert len(f["lr"]) == _expected_patches(image_folders["train"], 3, 33, 9)
        attrs = dict(f.attrs)
    assert attrs["scale"] == 3 and attrs["layout"] == "upsampled" and attrs["color"] == "y"
    assert attrs["patch_size"] == 33 and attrs["stride"] == 9 and attrs["images"] == 6 and not attrs["augment"]
    with h5py.File(evaluation) as f:
        names = sorted(f["images"])
        assert names == ["val0", "val1", "val2"]
        g = f["images/val1"]
        assert g["hr"].shape == (63, 51, 3) and g["input"].shape == (1, 63, 51)  # cropped to multiples of 3


def test_lr_hr_patches_line_up_with_the_whole_lr_image(tmp_path, image_folders):
    train, _ = make_h5(tmp_path, image_folders, 4, "--layout", "lr-hr", "--color", "rgb", "--patch-size", "32", "--stride", "16")
    first = sorted(list_images(image_folders["train"]))[0]
    hr = mod_crop(load_rgb(first), 4)
    lr = downscale(hr, 4)
    with h5py.File(train) as f:
        assert f["lr"].shape[1:] == (3, 8, 8) and f["hr"].shape[1:] == (3, 32, 32)
        # The second patch of the first image starts 16 HR px (4 LR px) to the right.
        assert np.array_equal(f["hr"][1], to_planes(hr, "rgb")[:, 0:32, 16:48])
        assert np.array_equal(f["lr"][1], to_planes(lr, "rgb")[:, 0:8, 4:12])


def test_augment_stores_all_eight_orientations(tmp_path, image_folders, h5_x3):
    train, _ = make_h5(tmp_path, image_folders, 3, "--stride", "9", "--augment", "--rescale", "1")
    with h5py.File(train) as f, h5py.File(h5_x3[0]) as plain:
        assert len(f["hr"]) == 8 * len(plain["hr"])
        assert f.attrs["augment"]
        one = plain["hr"][0, 0]
        first_image = f["hr"][: 8 * 20]  # the first image's patches come first, in 8 blocks
    n = len(first_image) // 8
    blocks = [first_image[k * n, 0] for k in range(8)]
    expected = [np.rot90(one, k) for k in range(4) for _ in (0, 1)]
    expected = [e if i % 2 == 0 else e[:, ::-1] for i, e in enumerate(expected)]
    for got, want in zip(blocks, expected):
        assert np.array_equal(got, want)


def test_rescale_adds_each_image_downscaled_and_augment_defaults_to_the_papers_factors(tmp_path, image_folders):
    from sr.imresize import imresize
    from sr.data.degradation import to_uint8

    train, _ = make_h5(tmp_path, image_folders, 3, "--stride", "9", "--augment")
    with h5py.File(train) as f:
        assert json.loads(f.attrs["rescale"]) == list(PAPER_RESCALE)
        assert "--augment --rescale 1 0.9 0.8 0.7 0.6" in f.attrs["command"]
        count = len(f["hr"])
        first = f["hr"][:8]
    # Every factor's copy is cut like an image of its own: mod-cropped, then the same grid.
    expected = 0
    for path in list_images(image_folders["train"]):
        image = load_rgb(path)
        for factor in PAPER_RESCALE:
            h, w = mod_crop(image if factor == 1 else to_uint8(imresize(image, factor)), 3).shape[:2]
            if min(h, w) >= 33:
                expected += 8 * ((h - 33) // 9 + 1) * ((w - 33) // 9 + 1)
    assert count == expected
    # The first patches are the first image at full size (factor 1 comes first).
    hr = to_planes(mod_crop(load_rgb(sorted(list_images(image_folders["train"]))[0]), 3), "y")
    assert np.array_equal(first[0], hr[:, :33, :33])


def test_rescale_factors_are_checked(tmp_path, image_folders):
    for bad in ("0", "1.5", "x"):
        with pytest.raises(SystemExit):
            prepare_h5.parse_args(["--scale", "3", "--rescale", bad])


def test_small_images_are_skipped_with_a_warning(tmp_path, image_folders, capsys):
    make_h5(tmp_path, image_folders, 3, "--stride", "20")
    assert "skipped 1 image(s) smaller than a 33px patch: tiny.png" in capsys.readouterr().err


def test_memory_and_lazy_loading_give_the_same_batches(h5_x3):
    memory, lazy = PatchDataset(h5_x3[0], "memory"), PatchDataset(h5_x3[0], "lazy")
    assert memory.in_memory and not lazy.in_memory
    for a, b in zip(memory[[5, 1, 9]], lazy[[1, 5, 9]]):
        assert a.dtype == b.dtype == np.uint8 or a.dtype == b.dtype
        assert sorted(map(bytes, a.numpy())) == sorted(map(bytes, b.numpy()))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--layout", "lr-hr", "--patch-size", "30"], "--patch-size 30 is not a multiple of --scale 4"),
        (["--layout", "lr-hr", "--patch-size", "32", "--stride", "10"], "--stride 10 is not a multiple"),
        (["--patch-size", "200"], "every image in train is smaller than --patch-size 200"),
    ],
)
def test_bad_geometry_is_refused_and_nothing_is_left(tmp_path, image_folders, argv, message):
    with pytest.raises(UserError, match=message):
        make_h5(tmp_path, image_folders, 4, *argv)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_leaves_no_file_that_looks_complete(tmp_path, image_folders, monkeypatch):
    calls = []

    def load_then_stop(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return load_rgb(path)

    monkeypatch.setattr(prepare_h5, "load_rgb", load_then_stop)
    with pytest.raises(KeyboardInterrupt):
        make_h5(tmp_path, image_folders, 3)
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_names_the_folder_and_the_source(tmp_path):
    args = prepare_h5.parse_args(["--scale", "3", "--data-root", str(tmp_path), "--output", str(tmp_path / "o.h5")])
    with pytest.raises(UserError, match=f"dataset 'T91' not found: looked for {tmp_path}/T91/.*Yang et al"):
        prepare_h5.main(args)


@pytest.mark.parametrize("scale", ["1", "2.5", "x"])
def test_a_scale_that_is_not_an_integer_of_at_least_two_exits_with_one_line(scale):
    result = subprocess.run([sys.executable, "prepare_h5.py", "--scale", scale], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "scale must be an integer >= 2" in result.stderr


def test_several_image_sets_make_one_training_file(tmp_path, image_folders):
    train = tmp_path / "both.h5"
    validation = tmp_path / "validation"  # disjoint from the training images, as a validation set must be:
    validation.mkdir()                    # other pictures, not byte copies of the eval images trained on here
    for path in list_images(image_folders["eval"]):
        Image.fromarray(load_rgb(path)[::-1].copy()).save(validation / path.name)
    argv = ["--scale", "3", "--stride", "9", "--images", str(image_folders["train"]), str(image_folders["eval"]),
            "--eval-images", str(validation), "--output", str(train), "--eval-output", str(tmp_path / "e.h5")]
    prepare_h5.main(prepare_h5.parse_args(argv))
    expected = _expected_patches(image_folders["train"], 3, 33, 9) + _expected_patches(image_folders["eval"], 3, 33, 9)
    with h5py.File(train) as f:
        assert len(f["lr"]) == expected and f.attrs["source_name"] == "train+eval" and f.attrs["images"] == 9


def test_an_output_that_cannot_be_written_is_one_clear_error(tmp_path, image_folders):
    (tmp_path / "file").write_text("")
    argv = ["--scale", "3", "--images", str(image_folders["train"]), "--eval-images", str(image_folders["eval"]),
            "--output", str(tmp_path / "file" / "t.h5"), "--eval-output", str(tmp_path / "e.h5")]
    with pytest.raises(UserError, match="cannot write .*file/t.h5"):
        prepare_h5.main(prepare_h5.parse_args(argv))


def test_validation_images_are_held_out_of_the_training_images_by_default(tmp_path, image_folders):
    train, val = tmp_path / "train.h5", tmp_path / "val.h5"
    prepare_h5.main(prepare_h5.parse_args(["--scale", "3", "--images", "train", "--data-root", str(image_folders["train"].parent),
                                           "--stride", "9", "--output", str(train), "--eval-output", str(val)]))
    with h5py.File(train) as f, h5py.File(val) as g:
        held = json.loads(f.attrs["held_out"])
        assert len(held) == 2 and f.attrs["images"] == 7 - 2 - 1  # 7 files, 2 held out, tiny.png too small
        assert sorted(g["images"]) == sorted(name.removesuffix(".png") for name in held)
        assert g.attrs["source_name"] == "train-val" and f.attrs["source"] == g.attrs["source"] == "train"  # no machine's paths
    every = sorted(list_images(image_folders["train"]))
    assert held_out(every) == held_out(list(reversed(every)))  # fixed by the set, not by listing order
    assert len(held_out(every * 13)) == round(len(every) * 13 * 0.05)


def test_a_test_set_or_an_overlapping_set_never_validates(tmp_path, image_folders):
    test_set = tmp_path / "Set5"
    test_set.mkdir()
    for path in list_images(image_folders["eval"]):
        (test_set / path.name).write_bytes(path.read_bytes())
    argv = ["--scale", "3", "--images", str(image_folders["train"]), "--output", str(tmp_path / "t.h5"),
            "--eval-output", str(tmp_path / "v.h5")]
    with pytest.raises(UserError, match="Set5 is a test set"):
        prepare_h5.main(prepare_h5.parse_args([*argv, "--eval-images", str(test_set)]))
    with pytest.raises(UserError, match="shares 7 image"):
        prepare_h5.main(prepare_h5.parse_args([*argv, "--eval-images", str(image_folders["train"])]))
    assert not (tmp_path / "t.h5").exists()


def test_hold_out_and_test_sets_go_by_content_not_by_path(tmp_path, image_folders):
    # Issue 21, row 10: `--images T91 /path/to/a/symlink/of/T91` let the held-out validation
    # images back into training under the second path; a test set given as training images,
    # or a renamed copy of one as --eval-images, was not refused.
    root = image_folders["train"].parent
    link = tmp_path / "link"
    link.symlink_to(image_folders["train"], target_is_directory=True)
    train, val = tmp_path / "train.h5", tmp_path / "val.h5"
    argv = ["--scale", "3", "--data-root", str(root), "--stride", "9", "--output", str(train), "--eval-output", str(val)]
    prepare_h5.main(prepare_h5.parse_args([*argv, "--images", "train", str(link)]))
    with h5py.File(train) as f, h5py.File(val) as g:
        assert f.attrs["images"] == 7 - 2 - 1  # as from the folder alone: no image twice, no held-out one back
        held = set(g["images"])
    name, files, _, val_files = choose_images(Packing.settle(prepare_h5.parse_args([*argv, "--images", "train", str(link)])))
    assert len(files) == 5 and not {f.stem for f in files} & held and len(val_files) == 2

    # A data root with a test set: its images, under any name or folder, are never training or validation data.
    data = tmp_path / "data"
    (data / "Set5").mkdir(parents=True)
    test_image = sorted(list_images(image_folders["eval"]))[0]
    (data / "Set5" / "baby.png").write_bytes(test_image.read_bytes())
    (data / "mine").mkdir()
    for path in list_images(image_folders["train"]):
        (data / "mine" / path.name).write_bytes(path.read_bytes())
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / "holiday.png").write_bytes(test_image.read_bytes())
    argv = ["--scale", "3", "--data-root", str(data), "--stride", "9", "--output", str(tmp_path / "t.h5"), "--eval-output", str(tmp_path / "v.h5")]
    with pytest.raises(UserError, match=r"--images Set5: Set5 is a test set; it is never trained on"):
        prepare_h5.main(prepare_h5.parse_args([*argv, "--images", "mine", "Set5"]))
    with pytest.raises(UserError, match=r"--images: .*holiday.png is Set5/baby.png of a test set \(same content\)"):
        prepare_h5.main(prepare_h5.parse_args([*argv, "--images", "mine", str(renamed)]))
    with pytest.raises(UserError, match=r"--eval-images .*holiday.png is Set5/baby.png of a test set \(same content\)"):
        prepare_h5.main(prepare_h5.parse_args([*argv, "--images", "mine", "--eval-images", str(renamed)]))
    assert not (tmp_path / "t.h5").exists()


def test_a_duplicate_image_does_not_move_the_held_out_images(tmp_path, image_folders, data_root):
    # T91 holds one image twice (t36 = t65). Dropping the copy before choosing the hold-out shifted
    # the evenly spread choice to t9 and tt26, images every recorded T91 recipe had trained on.
    folder = tmp_path / "train"
    folder.mkdir()
    for path in list_images(image_folders["train"]):
        (folder / path.name).symlink_to(path)
    (folder / "img0_copy.png").write_bytes((image_folders["train"] / "img0.png").read_bytes())
    argv = ["--scale", "3", "--data-root", str(tmp_path), "--images", "train", "--val-images", "3"]
    _, files, _, val_files = choose_images(Packing.settle(prepare_h5.parse_args(argv)))
    assert val_files == held_out(list_images(folder), 3)  # chosen over all 8 files, the copy counted
    held_bytes = {path.read_bytes() for path in val_files}
    assert not [path for path in files if path.read_bytes() in held_bytes]  # no held-out content trains
    assert len(files) + len(val_files) == 8 - 1 - ("img0.png" in {p.name for p in val_files})

    recipe = json.loads((ROOT / "weights" / "fsrcnn_x3.json").read_text())
    recorded = json.loads(recipe["runs"][-1]["data"]["held_out"])
    argv = ["--scale", "3", "--data-root", str(data_root), "--images", "T91", "--val-images", "5"]
    _, files, _, val_files = choose_images(Packing.settle(prepare_h5.parse_args(argv)))
    assert [path.name for path in val_files] == recorded == ["t18.png", "t34.png", "t51.png", "t8.png", "tt25.png"]
    assert len(files) == 91 - 5 - 1


def _digests(folder) -> dict:
    import hashlib
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def own_images(tmp_path, image_folders) -> dict:
    """Copies of two training and two eval images, for tests that may (on broken code) write over them."""
    copies = {}
    for kind, names in (("train", ["img0.png", "img1.png"]), ("eval", ["val0.png", "val1.png"])):
        copies[kind] = tmp_path / kind
        copies[kind].mkdir()
        for name in names:
            (copies[kind] / name).write_bytes((image_folders[kind] / name).read_bytes())
    return copies


@pytest.mark.parametrize("output, eval_output, message", [
    ("train/img0.png", "e.h5", r"--output .*train/img0.png is the input image .*img0.png"),  # issue 32, row 2
    ("train", "e.h5", r"--output .*train is the input folder"),
    ("t.h5", "eval/val1.png", r"--eval-output .*eval/val1.png is the input image"),
    ("t.h5", "train/../train/img1.png", r"--eval-output .*img1.png is the input image"),
    ("same.h5", "same.h5", r"--output and --eval-output are both .*same.h5"),  # issue 32, row 3
])
def test_no_output_replaces_an_input_or_the_other_output_and_nothing_is_read_first(own_images, output, eval_output,
                                                                                   message, monkeypatch):
    root = own_images["train"].parent
    before = _digests(root)
    monkeypatch.setattr(prepare_h5, "load_rgb", lambda path: pytest.fail(f"read {path} before refusing"))
    monkeypatch.setattr("sr.data.packing.content_hash", lambda path: pytest.fail(f"hashed {path} before refusing"))
    argv = ["--scale", "3", "--images", str(own_images["train"]), "--eval-images", str(own_images["eval"]),
            "--output", str(root / output), "--eval-output", str(root / eval_output)]
    with pytest.raises(UserError, match=message):
        prepare_h5.main(prepare_h5.parse_args(argv))
    assert _digests(root) == before


def _prepare(capsys, *argv: str) -> tuple[int, str, str]:
    """prepare_h5.py run as its command line runs it (sr.cli.run): (exit code, stdout, stderr)."""
    code = run(prepare_h5.main, lambda: prepare_h5.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_output_over_an_input_image_exits_2_with_one_line(own_images, capsys):
    root = own_images["train"].parent
    before = _digests(root)
    code, out, err = _prepare(capsys, "--scale", "3", "--images", str(own_images["train"]), "--val-images", "1",
                              "--output", str(own_images["train"] / "img0.png"))
    assert code == 2 and err.count("\n") == 1 and "is the input image" in err and out == "", err
    assert _digests(root) == before


def test_a_name_with_a_newline_is_printed_quoted_on_one_line(tmp_path, own_images, capsys):
    # Issue 32, row 9: "wrote <name>" was split in two lines on stdout, misleading scripts that read it.
    odd = tmp_path / "two\nlines.h5"
    code, out, err = _prepare(capsys, "--scale", "3", "--stride", "33", "--images", str(own_images["train"]),
                              "--eval-images", str(own_images["eval"]), "--output", str(odd), "--eval-output", str(tmp_path / "e.h5"))
    assert code == 0, err
    assert len(out.splitlines()) == 3 and out.startswith(f"wrote {str(odd)!r}: ") and odd.is_file()
    (tmp_path / "file\nname").write_text("")  # a file where a folder is needed: the error names it
    code, out, err = _prepare(capsys, "--scale", "3", "--images", str(own_images["train"]), "--val-images", "1",
                              "--output", str(tmp_path / "file\nname" / "t.h5"))
    assert code == 2 and err.count("\n") == 1 and "file\\nname" in err, err
