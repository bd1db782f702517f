"""CelebA / CelebA-HQ / custom attribute datasets in the release's layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.data.celeba import AttributeImages, read_attr_file, toy_faces, write_custom_dataset
from faceedit.errors import DataError


def _celeba(tmp_path, n=6):
    names = ["5_o_Clock_Shadow", "Bangs", "Eyeglasses", "Male", "Young"]
    rows = []
    imgdir = tmp_path / "img"
    imgdir.mkdir()
    rng = np.random.default_rng(0)
    vals = rng.choice([-1, 1], size=(n, len(names)))
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        # 178 x 218 like aligned CelebA; a marker column shows where the crop lands
        arr = np.zeros((218, 178, 3), np.uint8)
        arr[:, 4:] = 200
        Image.fromarray(arr).save(imgdir / name)
        rows.append(name + "  " + " ".join(f"{v:2d}" for v in vals[i]))
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text(f"{n}\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    return imgdir, attr, names, vals


def test_celeba_labels_in_chosen_order_and_center_crop(tmp_path) -> None:
    imgdir, attr, names, vals = _celeba(tmp_path)
    ds = AttributeImages("celeba", imgdir, attr, ["Young", "Bangs"], 32, mode="all")
    img, att = ds[2]
    assert img.shape == (3, 32, 32) and img.min() >= -1 and img.max() <= 1
    expected = (vals[2, [names.index("Young"), names.index("Bangs")]] > 0).astype(np.float32)
    assert torch.equal(att, torch.from_numpy(expected))
    # the 170-px centre crop starts at column 4, past the dark 4-px stripe
    assert img[:, :, 0].min() > 0.5
    with pytest.raises(DataError, match="Smiling"):
        AttributeImages("celeba", imgdir, attr, ["Smiling"], 32)


def test_celeba_hq_mapping(tmp_path) -> None:
    _, attr, names, vals = _celeba(tmp_path)
    hq = tmp_path / "hq"
    hq.mkdir()
    orig = [4, 0, 2]
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 10 * i, np.uint8)).save(hq / f"{i}.jpg")
    lst = tmp_path / "image_list.txt"
    lst.write_text(
        "idx orig_idx orig_file proc_md5 final_md5\n"
        + "".join(f"{i} {o} {o + 1:06d}.jpg x y\n" for i, o in enumerate(orig))
    )
    ds = AttributeImages("celeba-hq", hq, attr, ["Male"], 16, mode="all", image_list_path=lst)
    for i, o in enumerate(orig):
        assert ds[i][1].item() == float(vals[o, names.index("Male")] > 0)


def test_custom_format_any_mode_and_bad_files_reported(tmp_path, caplog) -> None:
    imgs, labels = toy_faces(4, 32, seed=1)
    attr = write_custom_dataset(tmp_path / "c", imgs, labels, ["Bangs", "Eyeglasses", "Pale_Skin"])
    # RGBA, palette, 16-bit grey and CMYK images all come back as RGB in [-1, 1]
    Image.fromarray(imgs[0]).convert("RGBA").save(tmp_path / "c" / "000000.png")
    Image.fromarray(imgs[1]).convert("P").save(tmp_path / "c" / "000001.png")
    Image.fromarray(imgs[2][..., 0].astype(np.uint16) * 257).save(tmp_path / "c" / "000002.png")
    (tmp_path / "c" / "000003.png").write_bytes(b"not an image")
    ds = AttributeImages("custom", tmp_path / "c", attr, ["Pale_Skin", "Bangs"], 32)
    assert torch.equal(ds.labels, torch.from_numpy(labels[:, [2, 0]]))
    for i in range(3):
        assert ds[i][0].shape == (3, 32, 32)
    img, att = ds[3]  # unreadable: replaced by the next sample, reported by name
    assert torch.equal(att, ds.labels[0])
    assert "000003.png" in ds.bad_files and "000003.png" in caplog.text
    assert ds.check_files() == ["000003.png"]


def test_attr_file_errors_name_the_line(tmp_path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("2\nA B\nx.png 1 -1\ny.png 1\n")
    with pytest.raises(DataError, match="line 4"):
        read_attr_file(p)
