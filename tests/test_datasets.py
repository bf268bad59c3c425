import bz2
import gzip
import io
import lzma
import os
import re
import sys
import tarfile
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fer_sklearn.datasets
from fer_sklearn.datasets import (
    EMOTIONS,
    attach_attributes,
    load_fer2013_csv,
    load_image_folder,
    load_labels_csv,
)
from fer_sklearn.datasets._decode import BAD_SIZE, csv_lines
from fer_sklearn.datasets.fer2013_csv import FER_CSV_IS_A_FOLDER
from fer_sklearn.datasets.labels_csv import CONFLICTING_ROWS, CSV_IS_A_FOLDER, LABELS_NO_ROWS

RNG = np.random.RandomState(0)


def _faces(n):
    return RNG.randint(0, 256, size=(n, 48, 48)).astype(np.uint8)


def _write_csv(path, images, emotions, usage):
    rows = [f'{e},"{" ".join(map(str, im.ravel()))}",{u}'
            for im, e, u in zip(images, emotions, usage)]
    text = "emotion,pixels,Usage\n" + "\n".join(rows) + "\n"
    suffix = path.suffix
    if suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    elif suffix == ".xz":
        path.write_bytes(lzma.compress(text.encode()))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(text.encode()))
    elif suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("fer2013.csv", text)
    else:
        path.write_text(text)
    return path


def _save(img, path, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).convert(mode).save(path)


def _folder_tree(root, split_layout=True, ext=".png", names=None):
    names = names or {"angry": "anger", "happy": "happiness", "sad": "sadness"}
    images, labels, splits = [], [], []
    for split in (["train", "PublicTest"] if split_layout else [None]):
        for canonical, folder in names.items():
            for k in range(2):
                img = _faces(1)[0]
                parts = ([split] if split else []) + [folder, f"{canonical}{k}{ext}"]
                _save(img, root.joinpath(*parts))
                images.append(img)
                labels.append(canonical)
                splits.append(split)
    return images, labels, splits


# ---------------------------------------------------------------- FER2013 CSV
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.xz", ".csv.bz2", ".zip"])
def test_fer2013_csv_plain_and_compressed(tmp_path, suffix):
    images = _faces(5)
    path = _write_csv(tmp_path / f"fer2013{suffix}", images, [0, 1, 3, 6, 4],
                      ["Training", "Training", "PublicTest", "PrivateTest", "Training"])
    bunch = load_fer2013_csv(path)
    np.testing.assert_array_equal(bunch.data, images)
    assert bunch.data.dtype == np.uint8 and bunch.data.shape == (5, 48, 48)
    assert bunch.target.tolist() == ["angry", "disgust", "happy", "neutral", "sad"]
    assert bunch.frame["split"].tolist() == ["train", "train", "validation", "test", "train"]
    assert bunch.frame["usage"].tolist()[2] == "PublicTest"
    assert bunch.target_names == ["angry", "disgust", "happy", "sad", "neutral"]
    X, y = load_fer2013_csv(path, return_X_y=True)
    np.testing.assert_array_equal(X, images)


def test_fer2013_csv_is_cached_and_the_cache_follows_the_file(tmp_path, private_cache):
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training"] * 3)
    first = load_fer2013_csv(path)
    second = load_fer2013_csv(path)
    assert not first.report["cache_hit"] and second.report["cache_hit"]
    np.testing.assert_array_equal(first.data, second.data)
    assert list(private_cache.glob("fer2013_csv-*.npz"))
    new = _faces(3)
    _write_csv(path, new, [3, 3, 3], ["Training"] * 3)  # size/mtime change
    third = load_fer2013_csv(path)
    assert not third.report["cache_hit"]
    np.testing.assert_array_equal(third.data, new)
    # the new entry replaced the older one of the same file; other files keep theirs
    assert len(list(private_cache.glob("fer2013_csv-*.npz"))) == 1
    load_fer2013_csv(_write_csv(tmp_path / "g.csv", new, [3, 3, 3], ["Training"] * 3))
    assert len(list(private_cache.glob("fer2013_csv-*.npz"))) == 2
    assert not load_fer2013_csv(path, cache=False).report["cache_hit"]


def test_a_file_put_in_place_with_the_same_size_and_mtime_is_decoded_again(tmp_path,
                                                                          private_cache):
    # as ``cp -p`` or ``rsync -t`` would leave it: only the inode/ctime tell
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training"] * 3)
    first = load_fer2013_csv(path)
    before = path.stat()
    other = _write_csv(tmp_path / "g.csv", first.data[::-1], [0, 1, 2], ["Training"] * 3)
    assert other.stat().st_size == before.st_size
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, path)
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_ctime_ns != before.st_ctime_ns
    again = load_fer2013_csv(path)
    assert not again.report["cache_hit"]
    np.testing.assert_array_equal(again.data, first.data[::-1])
    assert load_fer2013_csv(path).report["cache_hit"]


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_cache_entry_is_a_miss_and_is_rebuilt(tmp_path, private_cache, damage):
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training"] * 3)
    first = load_fer2013_csv(path)
    (entry,) = private_cache.glob("fer2013_csv-*.npz")
    raw = entry.read_bytes()
    entry.write_bytes(raw[:len(raw) // 2] if damage == "truncated" else b"")
    again = load_fer2013_csv(path)
    assert not again.report["cache_hit"]
    np.testing.assert_array_equal(again.data, first.data)
    assert again.frame["split"].tolist() == first.frame["split"].tolist()
    assert load_fer2013_csv(path).report["cache_hit"]  # the entry was written anew


def test_blank_split_cells_are_unassigned(tmp_path):
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training", "", "PrivateTest"])
    bunch = load_fer2013_csv(path)
    assert bunch.frame["split"].tolist() == ["train", "unassigned", "test"]
    assert bunch.frame["usage"].tolist() == ["Training", "", "PrivateTest"]
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label,split\nimgs/anger/angry0.png,angry,train\n"
                   "imgs/happiness/happy0.png,happy,\nimgs/sadness/sad0.png,sad,  \n")
    assert load_labels_csv(csv).frame["split"].tolist() == ["train", "unassigned", "unassigned"]


def test_fer2013_csv_bad_pixel_row_names_the_line(tmp_path):
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training"] * 3)
    lines = path.read_text().splitlines()
    lines[2] = '1,"1 2 3",Training'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"1 row\(s\) do not hold 2304 pixel values.*line\(s\) 3 "):
        load_fer2013_csv(path)
    # the rows at fault are the odd ones even where they are the majority
    lines[3] = '2,"1 2 3",Training'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"2 row\(s\) do not hold 2304 .*line\(s\) 3, 4 with \[3, 3\]"):
        load_fer2013_csv(path, cache=False)
    path.write_text('emotion,pixels,Usage\n0,,Training\n1,"",Training\n')
    with pytest.raises(ValueError, match=r"2 row\(s\) do not hold 2304 .*line\(s\) 2, 3 with \[0, 0\]"):
        load_fer2013_csv(path, cache=False)
    path.write_text("emotion,pixels,Usage\n")
    with pytest.raises(ValueError, match="has a header but no data rows"):
        load_fer2013_csv(path, cache=False)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".zip"])
def test_fer2013_csv_errors_name_the_file_line_after_blank_lines(tmp_path, suffix):
    # pandas skips blank lines, so data row i is not always line i + 2: a bad
    # row under blank lines was named by a line number above it.
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 9], ["Training"] * 3)
    lines = path.read_text().splitlines()
    text = "\n".join(["", lines[0], lines[1], "", "   ", lines[2], "", lines[3]]) + "\n"
    path = tmp_path / f"blank{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("fer2013.csv", text)
    else:
        path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz")
                         else text.encode())
    with pytest.raises(ValueError, match=r"'emotion' must be an id 0-6.*line\(s\) 8 hold \[9\]"):
        load_fer2013_csv(path, cache=False)


def test_csv_lines_follow_pandas_on_a_bom_odd_spaces_and_unfollowed_compressions(
        tmp_path, monkeypatch):
    path = tmp_path / "f.csv"
    # a BOM on the header; a form feed is data to pandas, not a blank line
    path.write_bytes("\ufeffa,b\n1,2\n\x0c\n\t \n3,4\n".encode())
    assert len(pd.read_csv(path)) == 3
    assert csv_lines(path, [0, 1, 2]) == [2, 3, 5]
    monkeypatch.setitem(sys.modules, "zstandard", None)  # not installed
    packed = tmp_path / "f.csv.zst"  # pandas infers zstd: i + 2 without zstandard
    packed.write_bytes(b"not read")
    assert csv_lines(packed, [0, 4]) == [2, 6]
    # a tar of two files (pandas refuses it), or a damaged one: i + 2
    with tarfile.open(tmp_path / "two.tar", "w") as tf:
        tf.add(path, "a.csv")
        tf.add(path, "b.csv")
    assert csv_lines(tmp_path / "two.tar", [0]) == [2]
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tar")
    assert csv_lines(tmp_path / "bad.tar.gz", [0, 3]) == [2, 5]


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz", ".csv.bz2", ".csv.xz"])
def test_csv_lines_read_a_compressed_csv_as_pandas_infers_it(tmp_path, suffix):
    text = "a,b\n\n1,2\n\n\n3,4\n"
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(text)
    path = tmp_path / f"f{suffix}"
    if ".tar" in suffix:
        with tarfile.open(path, "w:" + suffix.split(".")[-1].replace("tar", "")) as tf:
            tf.add(csv_path, "f.csv")
    else:
        opener = bz2.open if suffix.endswith(".bz2") else lzma.open
        with opener(path, "wt") as fh:
            fh.write(text)
    assert pd.read_csv(path)["b"].tolist() == [2, 4]
    assert csv_lines(path, [0, 1]) == [3, 6]


def test_csv_lines_follow_quoted_cells_that_span_lines(tmp_path):
    path = tmp_path / "f.csv"
    # a blank line inside quotes is data; a quote inside an unquoted cell is literal
    path.write_text('a,b\n"x\ny",2\n\n"p\n\nq",3\nsix "inch,4\n5,6\n')
    frame = pd.read_csv(path)
    assert frame["b"].tolist() == [2, 3, 4, 6]
    assert csv_lines(path, [0, 1, 2, 3]) == [2, 5, 8, 9]
    # a quoted blank cell is a row, not a blank line
    path.write_text('a,b\n1,x\n""\n2,\n')
    assert len(pd.read_csv(path)) == 3 and csv_lines(path, [0, 1, 2]) == [2, 3, 4]
    # a cell too long for the csv module: lines are counted as records
    path.write_text("emotion,pixels\n\n0," + "1 " * 70_000 + "\n1,2\n")
    assert len(pd.read_csv(path)) == 2 and csv_lines(path, [0, 1]) == [3, 4]


def test_a_fer2013_csv_stored_twice_in_a_zip_is_one_file(tmp_path):
    path = _write_csv(tmp_path / "f.zip", _faces(2), [0, 1], ["Training"] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("fer2013.csv", "emotion,pixels,Usage\n" + "\n".join(
                f'{e},"{" ".join(map(str, im.ravel()))}",PublicTest'
                for im, e in zip(_faces(3), [2, 3, 4])) + "\n")
    bunch = load_fer2013_csv(path, cache=False)
    assert bunch.target.tolist() == ["fear", "happy", "sad"]  # the last one stored


def test_fer2013_csv_bad_values_and_columns(tmp_path):
    path = _write_csv(tmp_path / "f.csv", _faces(2), [0, 9], ["Training"] * 2)
    with pytest.raises(ValueError, match=r"'emotion' must be an id 0-6.*line\(s\) 3 hold \[9\]"):
        load_fer2013_csv(path)
    bad = tmp_path / "g.csv"
    bad.write_text("label,pixels\n0,1 2\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['emotion'\].*found: \['label', 'pixels'\]"):
        load_fer2013_csv(bad)
    pixels = tmp_path / "h.csv"
    img = " ".join(["7"] * 2303 + ["300"])
    pixels.write_text(f'emotion,pixels\n0,"{img}"\n')
    with pytest.raises(ValueError, match=r"integers 0-255; line\(s\) 2"):
        load_fer2013_csv(pixels)


def test_fer2013_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        load_fer2013_csv(tmp_path / "nope.csv")
    # a folder exists: it is named as the wrong kind of input, not as missing
    with pytest.raises(ValueError, match=re.escape(FER_CSV_IS_A_FOLDER.format(path=tmp_path))):
        load_fer2013_csv(tmp_path)


# ------------------------------------------------------------- image folders
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_folder_split_layout_with_synonyms(tmp_path, ext):
    images, labels, splits = _folder_tree(tmp_path / "data", ext=ext)
    bunch = load_image_folder(tmp_path / "data")
    assert bunch.data.shape == (12, 48, 48) and bunch.data.dtype == np.uint8
    frame = bunch.frame
    assert sorted(set(frame["split"])) == ["train", "validation"]
    assert sorted(set(bunch.target)) == ["angry", "happy", "sad"]
    assert bunch.target_names == ["angry", "happy", "sad"]
    # each image comes back with its own label and pixels
    by_source = dict(zip(frame["source"], range(len(frame))))
    i = by_source["train/anger/angry0" + ext]
    assert bunch.target[i] == "angry"
    if ext == ".png":  # lossless
        np.testing.assert_array_equal(bunch.data[i], images[0])


def test_image_folder_class_layout_and_zip_with_single_root(tmp_path):
    _folder_tree(tmp_path / "flat" / "faces", split_layout=False)
    bunch = load_image_folder(tmp_path / "flat" / "faces")
    assert set(bunch.frame["split"]) == {"unassigned"}
    assert len(bunch.data) == 6
    # a zip holding one top-level folder: fer2013/train/<class>/...
    src = tmp_path / "tree"
    _folder_tree(src, ext=".jpg")
    zpath = tmp_path / "fer.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, "fer2013/" + f.relative_to(src).as_posix())
        zf.writestr("fer2013/train/.DS_Store", b"junk")
        zf.writestr("fer2013/train/anger/notes.txt", b"not an image")
    bunch = load_image_folder(zpath)
    assert len(bunch.data) == 12
    assert bunch.report["root_folder"] == "fer2013"
    assert bunch.report["empty_folders"] == []
    assert bunch.report["hidden_files"] == 1
    assert bunch.report["ignored_files"] == ["fer2013/train/anger/notes.txt"]
    assert all(s.startswith(("train/", "PublicTest/")) for s in bunch.frame["source"])
    again = load_image_folder(zpath)
    assert again.report["cache_hit"]
    np.testing.assert_array_equal(again.data, bunch.data)


def test_image_folder_converts_colour_16bit_and_other_sizes(tmp_path):
    root = tmp_path / "d"
    rgb = RNG.randint(0, 256, (48, 48, 3)).astype(np.uint8)
    _save(rgb, root / "happy" / "rgb.png", mode="RGB")
    Image.fromarray(np.full((48, 48), 65535, np.uint16)).save(root / "happy" / "deep.png")
    _save(_faces(1)[0].repeat(2, 0).repeat(2, 1), root / "sad" / "big.png")
    _save(RNG.randint(0, 256, (60, 40)).astype(np.uint8), root / "sad" / "wide.png")
    bunch = load_image_folder(root)
    assert bunch.data.shape == (4, 48, 48)
    conv = bunch.report["conversions"]
    assert conv["converted_to_gray"] == 1 and conv["high_bit_depth"] == 1
    assert conv["resized"] == 2 and conv["cropped_to_square"] == 1  # wide: crop, then resize
    i = list(bunch.frame["source"]).index("happy/deep.png")
    assert bunch.data[i].min() == 255
    j = list(bunch.frame["source"]).index("happy/rgb.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(bunch.data[j], expected)


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    face = np.zeros((48, 48), np.uint8)
    face[:8] = 255  # a bright band at the top of the face as shown
    stored = Image.fromarray(np.rot90(face, k=1))  # stored on its side, band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown after turning the stored pixels 90 degrees clockwise
    (tmp_path / "d" / "happy").mkdir(parents=True)
    stored.save(tmp_path / "d" / "happy" / "phone.jpg", exif=exif, quality=100)
    Image.fromarray(face).save(tmp_path / "d" / "happy" / "plain.png")
    bunch = load_image_folder(tmp_path / "d")
    assert bunch.report["conversions"]["exif_rotated"] == 1
    for img in bunch.data:
        assert img[:8].mean() > 200 and img[-8:].mean() < 50


def test_image_folder_unknown_class_lists_every_unknown_name(tmp_path):
    _folder_tree(tmp_path, split_layout=False,
                 names={"happy": "happy", "x": "bored", "y": "hapy"})
    with pytest.raises(ValueError) as err:
        load_image_folder(tmp_path)
    msg = str(err.value)
    assert "Unknown class name(s) 'bored', 'hapy' in class folders of" in msg
    assert "did you mean 'happy'" in msg and "np.str_" not in msg
    assert ", ".join(EMOTIONS) in msg


def test_image_folder_corrupt_image_raises_or_is_skipped(tmp_path):
    _folder_tree(tmp_path, split_layout=False)
    (tmp_path / "anger" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ValueError, match=r"Cannot decode image anger/broken.jpg.*on_error='skip'"):
        load_image_folder(tmp_path, cache=False)
    bunch = load_image_folder(tmp_path, on_error="skip", cache=False)
    assert len(bunch.data) == 6
    assert [s for s, _ in bunch.report["skipped"]] == ["anger/broken.jpg"]
    with pytest.raises(ValueError, match="on_error='ignore' is not one of"):
        load_image_folder(tmp_path, on_error="ignore")


def test_image_folder_empty_missing_truncated_and_mixed(tmp_path):
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found in"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        load_image_folder(tmp_path / "missing")
    _folder_tree(tmp_path / "src", split_layout=False)
    zpath = tmp_path / "cut.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted((tmp_path / "src").rglob("*.png")):
            zf.write(f, f.relative_to(tmp_path / "src").as_posix())
    zpath.write_bytes(zpath.read_bytes()[:-60])
    with pytest.raises(ValueError, match="not a folder or a readable .zip file"):
        load_image_folder(zpath)
    mixed = tmp_path / "mixed"
    _folder_tree(mixed, split_layout=False)
    _save(_faces(1)[0], mixed / "train" / "happy" / "x.png")
    with pytest.raises(ValueError, match="mixes layouts"):
        load_image_folder(mixed)
    loose = tmp_path / "loose"
    _save(_faces(1)[0], loose / "a.png")
    _save(_faces(1)[0], loose / "b.png")
    with pytest.raises(ValueError, match=r"every image sits at depth 1 \(e.g. \['a.png', "
                                         r"'b.png'\]\), where ROOT/<class>/<image>"):
        load_image_folder(loose)


def test_zip_member_names_with_backslashes_are_paths(tmp_path):
    _folder_tree(tmp_path / "src")
    zpath = tmp_path / "windows.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted((tmp_path / "src").rglob("*.png")):
            zf.writestr(str(f.relative_to(tmp_path / "src").as_posix()).replace("/", "\\"),
                        f.read_bytes())
    bunch = load_image_folder(zpath)
    assert len(bunch.data) == 12 and "train/anger/angry0.png" in set(bunch.frame["source"])
    assert set(bunch.frame["split"]) == {"train", "validation"}  # PublicTest


# ------------------------------------------------------------- labels CSV
def test_labels_csv_reroots_foreign_absolute_paths(tmp_path):
    _folder_tree(tmp_path / "here" / "fer2013", split_layout=True, ext=".jpg")
    files = sorted((tmp_path / "here" / "fer2013").rglob("*.jpg"))
    foreign = ["/content/drive/MyDrive/fer2013/" + f.relative_to(
        tmp_path / "here" / "fer2013").as_posix() for f in files]
    labels = [f.parent.name for f in files]
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"image_path": foreign, "label": labels}).to_csv(csv, index=False)
    with pytest.raises(FileNotFoundError, match=r"12 of 12 image path\(s\).*root="):
        load_labels_csv(csv)
    bunch = load_labels_csv(csv, root=tmp_path / "here" / "fer2013")
    assert len(bunch.data) == 12
    expected = pd.Series(labels).map({"anger": "angry", "happiness": "happy",
                                      "sadness": "sad"}).tolist()
    assert bunch.target.tolist() == expected
    assert bunch.frame["source"].tolist() == foreign
    # paths written on Windows re-root the same way
    windows = ["C:\\Users\\me\\fer2013\\" + f.relative_to(
        tmp_path / "here" / "fer2013").as_posix().replace("/", "\\") for f in files]
    pd.DataFrame({"image_path": windows, "label": labels}).to_csv(csv, index=False)
    with pytest.raises(FileNotFoundError, match=r"12 of 12 image path\(s\).*root="):
        load_labels_csv(csv, cache=False)
    bunch = load_labels_csv(csv, root=tmp_path / "here" / "fer2013", cache=False)
    assert bunch.target.tolist() == expected


def test_labels_csv_relative_paths_split_column_and_missing_files(tmp_path):
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    rows = pd.DataFrame({"image_path": ["imgs/anger/angry0.png", "imgs/happiness/happy1.png",
                                        "imgs/gone.png"],
                         "label": ["angry", "happy", "sad"],
                         "split": ["train", "test", "train"]})
    rows.to_csv(csv, index=False)
    with pytest.raises(FileNotFoundError, match="imgs/gone.png"):
        load_labels_csv(csv)
    bunch = load_labels_csv(csv, on_error="skip")
    assert bunch.target.tolist() == ["angry", "happy"]
    assert bunch.frame["split"].tolist() == ["train", "test"]
    assert bunch.report["missing_files"] == ["imgs/gone.png"]
    rows.drop(columns="label").to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['label'\]"):
        load_labels_csv(csv)


def test_labels_csv_image_listed_twice_with_other_label_or_split_is_refused(tmp_path):
    # such rows once loaded as two samples: one face, two expressions, or in
    # training and test at once
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"image_path": ["imgs/anger/angry0.png", "imgs/anger/angry0.png",
                                 "imgs/happiness/happy1.png", "./imgs/happiness/happy1.png",
                                 "imgs/sadness/sad0.png", "imgs/sadness/sad0.png"],
                  "label": ["angry", "happy", "happy", "happy", "sad", "sad"],
                  "split": ["train", "train", "train", "test", "train", "Training"]}
                 ).to_csv(csv, index=False)
    message = CONFLICTING_ROWS.format(count=2, path=csv, examples=[
        "imgs/anger/angry0.png", "imgs/happiness/happy1.png"])
    with pytest.raises(ValueError, match=re.escape(message)):
        load_labels_csv(csv, cache=False)
    bunch = load_labels_csv(csv, on_error="skip", cache=False)
    # a plain repeat (same label, same split under another name) is not a conflict
    assert bunch.target.tolist() == ["sad", "sad"]
    assert bunch.report["conflicting_rows"] == ["imgs/anger/angry0.png"] * 2 + [
        "imgs/happiness/happy1.png", "./imgs/happiness/happy1.png"]
    assert bunch.report["missing_files"] == []


def test_labels_csv_paths_with_backslashes_or_spaces_are_found(tmp_path):
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"image_path": ["imgs\\anger\\angry0.png", " imgs/happiness/happy1.png "],
                  "label": ["angry", "happy"]}).to_csv(csv, index=False)
    assert load_labels_csv(csv).target.tolist() == ["angry", "happy"]


def test_labels_csv_cache_follows_the_listed_images(tmp_path):
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label\nimgs/anger/angry0.png,angry\n"
                   "imgs/happiness/happy0.png,happy\n")
    first = load_labels_csv(csv)
    assert load_labels_csv(csv).report["cache_hit"]
    # the CSV is unchanged; an image it lists is overwritten, then deleted
    new = np.full((48, 48), 222, np.uint8)
    _save(new, tmp_path / "imgs" / "anger" / "angry0.png")
    changed = load_labels_csv(csv)
    assert not changed.report["cache_hit"]
    np.testing.assert_array_equal(changed.data[0], new)
    np.testing.assert_array_equal(changed.data[1], first.data[1])
    (tmp_path / "imgs" / "happiness" / "happy0.png").unlink()
    with pytest.raises(FileNotFoundError, match="happy0.png"):
        load_labels_csv(csv)


def test_labels_csv_relative_root_is_read_from_the_working_folder(tmp_path, monkeypatch):
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label\nimgs/a.png,happy\nimgs/b.png,sad\n")
    for value, folder in ((10, "one"), (200, "two")):
        for name in ("a", "b"):
            _save(np.full((48, 48), value, np.uint8), tmp_path / folder / "imgs" / f"{name}.png")
    loaded = {}
    for folder in ("one", "two"):
        monkeypatch.chdir(tmp_path / folder)
        loaded[folder] = load_labels_csv(csv, root=".")
    assert not loaded["two"].report["cache_hit"]
    assert (loaded["one"].data == 10).all() and (loaded["two"].data == 200).all()


def test_labels_csv_pointed_at_a_folder_suggests_the_folder_loader(tmp_path):
    _folder_tree(tmp_path / "faces", split_layout=False)
    message = CSV_IS_A_FOLDER.format(path=tmp_path / "faces")
    assert "folder:" in message
    with pytest.raises(ValueError) as err:
        load_labels_csv(tmp_path / "faces")
    assert str(err.value) == message


def test_labels_csv_with_a_header_and_no_rows_says_so(tmp_path):
    # once a numpy TypeError about 'invert', with either on_error
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label\n")
    for on_error in ("raise", "skip"):
        with pytest.raises(ValueError, match=re.escape(LABELS_NO_ROWS.format(path=csv))):
            load_labels_csv(csv, on_error=on_error, cache=False)


def test_labels_csv_blank_path_or_label_cells_name_their_file_lines(tmp_path):
    # A blank path was reported as the CSV's folder missing, a blank label as
    # the unknown label '', neither with a line; blank lines move the lines.
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label\nimgs/anger/angry0.png,angry\n\n"
                   "imgs/happiness/happy1.png,  \n,sad\n")
    for on_error in ("raise", "skip"):
        with pytest.raises(ValueError, match=re.escape(
                "2 row(s) have a blank image_path or label cell, e.g. line(s) 4, 5; ")):
            load_labels_csv(csv, on_error=on_error, cache=False)
    csv.write_text("image_path,label\n,angry\n")
    with pytest.raises(ValueError, match=re.escape("blank image_path cell, e.g. line(s) 2;")):
        load_labels_csv(csv, cache=False)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "48"])
def test_a_bad_image_size_is_refused_before_any_image_is_read(tmp_path, size):
    # size=0 once blamed every image in turn ("Cannot decode image happy/0.png")
    _folder_tree(tmp_path / "faces", split_layout=False)
    pd.DataFrame({"image_path": ["anger/a.png"], "label": ["anger"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    message = re.escape(BAD_SIZE.format(value=size))
    with pytest.raises(ValueError, match=message):
        load_image_folder(tmp_path / "faces", size=size, on_error="skip", cache=False)
    with pytest.raises(ValueError, match=message):
        load_labels_csv(tmp_path / "labels.csv", size=size, cache=False)


# ------------------------------------------------------------- attributes
def test_attach_attributes_joins_on_path_and_reports_matches(tmp_path):
    _folder_tree(tmp_path / "d", split_layout=False)
    bunch = load_image_folder(tmp_path / "d")
    sources = list(bunch.frame["source"])
    table = pd.DataFrame({"path": sources[:-1] + ["elsewhere/x.png"],
                          "gender": ["female", "male"] * 3,
                          "age_group": ["adult"] * 6})
    csv = tmp_path / "attrs.csv"
    table.to_csv(csv, index=False)
    out = attach_attributes(bunch, csv)
    assert out.attributes == ["gender", "age_group"]
    assert out.report["attributes"] == {"file": str(csv), "matched": 5,
                                        "unmatched_images": 1, "unused_rows": 1,
                                        "ambiguous_images": 0}
    assert out.frame["gender"].tolist()[:5] == ["female", "male"] * 2 + ["female"]
    assert pd.isna(out.frame["gender"].iloc[-1])
    assert "gender" not in bunch.frame  # the input is left alone


def test_attach_attributes_strips_a_leading_root_folder(tmp_path):
    _folder_tree(tmp_path / "d", split_layout=False)
    bunch = load_image_folder(tmp_path / "d")
    table = pd.DataFrame({"path": ["fer2013/" + s for s in bunch.frame["source"]],
                          "race": ["a"] * len(bunch.frame)})
    out = attach_attributes(bunch, table)
    assert out.report["attributes"]["matched"] == len(bunch.frame)


def test_attach_attributes_never_pairs_one_row_with_two_images(tmp_path):
    _folder_tree(tmp_path / "d")  # train/anger/angry0.png and PublicTest/anger/angry0.png
    _save(_faces(1)[0], tmp_path / "d" / "train" / "anger" / "extra.png")
    bunch = load_image_folder(tmp_path / "d")
    table = pd.DataFrame({" path ": ["anger/angry0.png", "anger/extra.png", None, " "],
                          " gender": ["f", "m", "f", "m"]})
    out = attach_attributes(bunch, table, on="path")
    assert out.attributes == ["gender"]
    gender = dict(zip(out.frame["source"], out.frame["gender"]))
    assert gender["train/anger/extra.png"] == "m"
    assert pd.isna(gender["train/anger/angry0.png"]) and pd.isna(gender["PublicTest/anger/angry0.png"])
    report = out.report["attributes"]
    assert report["matched"] == 1 and report["ambiguous_images"] == 2
    assert report["unused_rows"] == 3  # the ambiguous row and the two without a key


def test_attach_attributes_errors(tmp_path):
    _folder_tree(tmp_path / "d", split_layout=False)
    bunch = load_image_folder(tmp_path / "d")
    with pytest.raises(ValueError, match="No row of the attribute table matched"):
        attach_attributes(bunch, pd.DataFrame({"path": ["x/y.png"], "g": ["f"]}))
    with pytest.raises(ValueError, match="has no column 'path'.*'file'"):
        attach_attributes(bunch, pd.DataFrame({"file": ["x"], "g": ["f"]}))
    first = bunch.frame["source"][0]
    with pytest.raises(ValueError, match="more than once"):
        attach_attributes(bunch, pd.DataFrame({"path": [first, first], "g": ["f", "m"]}))
    with pytest.raises(ValueError, match=r"column\(s\) \['split'\]"):
        attach_attributes(bunch, pd.DataFrame({"path": [first], "split": ["f"]}))
    with pytest.raises(FileNotFoundError):
        attach_attributes(bunch, tmp_path / "none.csv")


def test_attach_attributes_on_fer2013_rows(tmp_path):
    path = _write_csv(tmp_path / "f.csv", _faces(3), [0, 1, 2], ["Training"] * 3)
    bunch = load_fer2013_csv(path)
    out = attach_attributes(bunch, pd.DataFrame({"row": ["0", "2"], "gender": ["f", "m"]}),
                            on="row")
    assert out.frame["gender"].tolist()[0] == "f" and out.frame["gender"].tolist()[2] == "m"
    # the default takes `row` where the table has no `path` column, so the CLI joins it too
    (tmp_path / "g.csv").write_text("row,gender\n0,f\n2,m\n")
    out = attach_attributes(bunch, tmp_path / "g.csv")
    assert out.frame["gender"].tolist()[0] == "f" and out.report["attributes"]["matched"] == 2
    from benchmark.config import resolve_config
    from benchmark.stages.data import load

    path = _write_csv(tmp_path / "f30.csv", _faces(30), [0, 3] * 15, ["Training"] * 30)
    rows = pd.DataFrame({"row": range(30), "gender": ["f", "m", "m"] * 10})
    rows.to_csv(tmp_path / "g30.csv", index=False)
    d = load(resolve_config(dataset=f"fer2013:{path}", attributes=str(tmp_path / "g30.csv")))
    assert d.attributes == ["gender"]
    assert len(d.frame_train) + len(d.frame_test) == 30


def test_fer2013_zip_kind_is_told_by_its_members(tmp_path):
    """A zip of images that also carries a CSV is a folder; a zipped FER2013 CSV with
    macOS's hidden copy beside it is the CSV."""
    from benchmark.stages.data import _zip_holds_csv

    src = tmp_path / "tree"
    _folder_tree(src)
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f.relative_to(src).as_posix())
        zf.writestr("demographics.csv", "path,gender\n")
    assert not _zip_holds_csv(images)
    text = tmp_path / "plain.csv"
    _write_csv(text, _faces(3), [0, 3, 6], ["Training", "Training", "PublicTest"])
    mac = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(mac, "w") as zf:
        zf.write(text, "fer2013.csv")
        zf.writestr("__MACOSX/._fer2013.csv", b"\x00\x05\x16\x07")
    assert _zip_holds_csv(mac)
    assert len(load_fer2013_csv(mac).data) == 3
    windows = tmp_path / "windows.zip"  # backslash-separated names, as some tools write
    with zipfile.ZipFile(windows, "w") as zf:
        zf.write(text, "data\\fer2013.csv")
        zf.writestr("__MACOSX\\data\\._fer2013.csv", b"\x00\x05\x16\x07")
    assert _zip_holds_csv(windows)
    assert len(load_fer2013_csv(windows).data) == 3
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.write(text, "a.csv")
        zf.write(text, "b.csv")
    with pytest.raises(ValueError, match=r"holds 2 CSV file\(s\) \['a.csv', 'b.csv'\], not one"):
        load_fer2013_csv(two)


def _encrypted(path):
    """Mark every member of the zip at ``path`` as encrypted (flag bit 0), as a
    password-protected zip has them."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 1
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def test_a_password_protected_zip_is_reported_not_a_traceback(tmp_path):
    src = tmp_path / "tree"
    _folder_tree(src, split_layout=False)
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f.relative_to(src).as_posix())
    _encrypted(images)
    with pytest.raises(ValueError, match="encrypted"):
        load_image_folder(images, cache=False)
    table = _write_csv(tmp_path / "fer2013.zip", _faces(3), [0, 1, 3], ["Training"] * 3)
    _encrypted(table)
    with pytest.raises(ValueError, match="Cannot read .*encrypted"):
        load_fer2013_csv(table, cache=False)


def test_a_labels_or_attribute_csv_that_is_no_csv_is_named(tmp_path):
    _folder_tree(tmp_path / "d", split_layout=False)
    png = next((tmp_path / "d").rglob("*.png"))
    with pytest.raises(ValueError, match=f"Cannot read {png} as CSV"):
        load_labels_csv(png)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="Cannot read .*empty.csv as CSV"):
        load_labels_csv(empty)
    with pytest.raises(ValueError, match=f"Cannot read {png} as CSV"):
        load_fer2013_csv(png, cache=False)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for k in range(500):
            zf.writestr(f"happy/{k}.png", b"x")
    with pytest.raises(ValueError, match="is a zip archive, not a labels CSV") as info:
        load_labels_csv(archive)
    assert len(str(info.value)) < 500
    named = re.findall(r"load_\w+", str(info.value))
    assert named and all(hasattr(fer_sklearn.datasets, name) for name in named)
    bunch = load_image_folder(tmp_path / "d")
    with pytest.raises(ValueError, match=f"Cannot read {png} as CSV"):
        attach_attributes(bunch, png)


def test_a_class_folder_that_is_a_link_is_loaded_and_cached_by_its_files(tmp_path):
    _folder_tree(tmp_path / "elsewhere", split_layout=False)
    root = tmp_path / "d"
    (root / "anger").mkdir(parents=True)
    for f in (tmp_path / "elsewhere" / "anger").iterdir():
        f.rename(root / "anger" / f.name)
    os.symlink(tmp_path / "elsewhere" / "happiness", root / "happiness")
    os.symlink(root, root / "anger" / "loop")  # a link back up the tree is not followed,
    os.symlink(tmp_path, root / "anger" / "up")  # nor one above the root
    bunch = load_image_folder(root)
    assert sorted(bunch.target.tolist()) == ["angry", "angry", "happy", "happy"]
    assert not bunch.report.get("empty_folders")
    _save(_faces(1)[0], tmp_path / "elsewhere" / "happiness" / "happy9.png")
    assert load_image_folder(root).target.tolist().count("happy") == 3  # not the cached 2


def test_training_and_testing_folders_are_the_train_and_test_splits(tmp_path):
    for split in ("training", "testing"):
        _folder_tree(tmp_path / "d" / split, split_layout=False)
    bunch = load_image_folder(tmp_path / "d")
    assert sorted(set(bunch.frame["split"])) == ["test", "train"]


def test_skip_that_leaves_no_image_is_an_error_naming_what_was_left_out(tmp_path):
    # on_error='skip' once returned an empty Bunch, with no word of why
    (tmp_path / "faces" / "anger").mkdir(parents=True)
    for i in range(2):
        (tmp_path / "faces" / "anger" / f"broken{i}.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"None of the 2 image\(s\) of .*faces could be read.*"
                                         r"anger/broken0.jpg"):
        load_image_folder(tmp_path / "faces", on_error="skip", cache=False)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"image_path": ["faces/anger/broken0.jpg", "elsewhere/gone.png"],
                  "label": ["angry", "sad"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"None of the 2 image\(s\) of .*labels.csv could be "
                                         r"read.*elsewhere/gone.png.*faces/anger/broken0.jpg"):
        load_labels_csv(csv, on_error="skip", cache=False)
    # one readable image is enough
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "faces" / "anger" / "ok.png")
    assert len(load_image_folder(tmp_path / "faces", on_error="skip", cache=False).data) == 1


def test_an_empty_result_from_the_cache_is_refused_too(tmp_path, monkeypatch):
    # an older version cached what on_error='skip' left: nothing, then returned it
    from fer_sklearn.datasets import image_folder

    def cached_nothing(*args, **kwargs):
        report = {"skipped": [["anger/broken.jpg", "cannot decode"]], "n_images": 0}
        return (np.empty((0, 48, 48), np.uint8), np.array([], dtype=object),
                pd.DataFrame({"split": [], "source": [], "folder": []}), report, True)

    monkeypatch.setattr(image_folder, "load_or_build", cached_nothing)
    (tmp_path / "anger").mkdir()
    with pytest.raises(ValueError, match=r"None of the 1 image\(s\) of .* could be read"):
        load_image_folder(tmp_path, on_error="skip")


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.xz"])
def test_damaged_compressed_csv_is_named_not_a_decompressor_traceback(tmp_path, suffix):
    path = _write_csv(tmp_path / f"fer2013{suffix}", _faces(40), [0] * 40, ["Training"] * 40)
    raw = bytearray(path.read_bytes())
    for i in range(30, min(len(raw) - 20, 230)):
        raw[i] ^= 0xA5
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(f"Cannot read {path} as CSV")):
        load_fer2013_csv(path, cache=False)
    labels = tmp_path / f"labels{suffix}"
    labels.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(f"Cannot read {labels} as CSV")):
        load_labels_csv(labels, cache=False)


def test_damaged_zip_member_is_named(tmp_path):
    # zlib's own error once surfaced as a traceback, with the zip left open
    _folder_tree(tmp_path / "faces", split_layout=False, ext=".bmp")
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((tmp_path / "faces").rglob("*.bmp")):
            zf.write(f, f.relative_to(tmp_path / "faces").as_posix())
    raw = bytearray(path.read_bytes())
    start = 30 + len("anger/angry0.bmp") + 20
    for i in range(start, start + 200):
        raw[i] ^= 0xC3
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"Cannot decode image anger/angry0.bmp: cannot read "
                                         r"the file \("):
        load_image_folder(path, cache=False)
    # as any unreadable image: skipped and listed where asked (a small zip was
    # once refused whole, up front, even with on_error="skip")
    bunch = load_image_folder(path, on_error="skip", cache=False)
    assert len(bunch.data) == 5 and [s for s, _ in bunch.report["skipped"]] == ["anger/angry0.bmp"]


def test_a_dangling_link_is_reported_not_dropped(tmp_path):
    _folder_tree(tmp_path / "faces", split_layout=False)
    (tmp_path / "faces" / "sadness" / "moved.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match=r"Cannot decode image sadness/moved.png"):
        load_image_folder(tmp_path / "faces", cache=False)
    bunch = load_image_folder(tmp_path / "faces", on_error="skip", cache=False)
    assert len(bunch.data) == 6
    assert [s for s, _ in bunch.report["skipped"]] == ["sadness/moved.png"]


def test_zip_member_names_with_a_dot_or_slash_prefix_load(tmp_path):
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, folder in enumerate(["happy", "sad"]):
            buf = io.BytesIO()
            Image.fromarray(_faces(1)[0]).save(buf, format="PNG")
            zf.writestr(f"./fer2013/train/{folder}/{i}.png", buf.getvalue())
            zf.writestr(f"//fer2013/test/{folder}/{i}.png", buf.getvalue())
        zf.writestr("./", b"")  # the folder entry bsdtar writes
    bunch = load_image_folder(path, cache=False)
    assert sorted(bunch.frame["source"]) == ["test/happy/0.png", "test/sad/1.png",
                                             "train/happy/0.png", "train/sad/1.png"]
    assert bunch.report["root_folder"] == "fer2013"
    assert bunch.report["empty_folders"] == []


def test_zip_members_of_one_path_load_once_the_last_as_unzipping_leaves_it(tmp_path):
    # A member appended under an existing name was loaded twice, both times
    # with the last one's pixels; one spelled "./x" beside "x" gave two images
    # of one path.
    faces = _faces(4)
    path = tmp_path / "faces.zip"

    def png(face):
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, format="PNG")
        return buf.getvalue()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("happy/a.png", png(faces[0]))
            zf.writestr("sad/b.png", png(faces[1]))
            zf.writestr("happy/a.png", png(faces[2]))  # appended: replaces the first
            zf.writestr("./sad/b.png", png(faces[3]))
    bunch = load_image_folder(path, cache=False)
    assert bunch.frame["source"].tolist() == ["happy/a.png", "sad/b.png"]
    np.testing.assert_array_equal(bunch.data, faces[[2, 3]])
    assert bunch.report["duplicate_members"] == ["happy/a.png", "sad/b.png"]


def test_attribute_values_spelled_na_or_none_are_groups(tmp_path):
    # pandas once read them as missing, merging them into `unknown`
    csv = tmp_path / "attributes.csv"
    csv.write_text("row,race,disability\n0,NA,None\n1,white,none\n2,,N/A\n")
    images = _faces(3)
    path = _write_csv(tmp_path / "fer2013.csv", images, [0, 1, 3], ["Training"] * 3)
    bunch = attach_attributes(load_fer2013_csv(path, cache=False), csv)
    assert bunch.frame["race"].tolist()[:2] == ["NA", "white"]
    assert pd.isna(bunch.frame["race"].iloc[2])
    assert bunch.frame["disability"].tolist() == ["None", "none", "N/A"]


def test_a_split_column_in_another_case_is_read(tmp_path):
    path = _write_csv(tmp_path / "fer2013.csv", _faces(2), [0, 1], ["Training", "PublicTest"])
    path.write_text(path.read_text().replace("emotion,pixels,Usage", "emotion,pixels,usage", 1))
    assert load_fer2013_csv(path, cache=False).frame["split"].tolist() == ["train", "validation"]
    _folder_tree(tmp_path / "imgs", split_layout=False)
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label,Split\nimgs/anger/angry0.png,angry,train\n"
                   "imgs/happiness/happy0.png,happy,test\n")
    assert load_labels_csv(csv, cache=False).frame["split"].tolist() == ["train", "test"]


def test_rerooting_ignores_absolute_paths_that_exist_here(tmp_path):
    # one local absolute path once made the common folder `/`
    _folder_tree(tmp_path / "imgs", split_layout=False)
    local = tmp_path / "imgs" / "anger" / "angry0.png"
    csv = tmp_path / "labels.csv"
    csv.write_text("image_path,label\n"
                   f"{local},angry\n"
                   "/content/drive/fer/happiness/happy0.png,happy\n"
                   "/content/drive/fer/sadness/sad0.png,sad\n")
    bunch = load_labels_csv(csv, root=tmp_path / "imgs", cache=False)
    assert bunch.target.tolist() == ["angry", "happy", "sad"]

    # where the paths that exist here are a whole class, the folder above the
    # missing ones is still the one to re-root
    old = tmp_path / "old" / "ds"
    _folder_tree(old, split_layout=False)
    _folder_tree(tmp_path / "new" / "ds", split_layout=False)
    csv.write_text("image_path,label\n"
                   f"{old / 'anger' / 'angry0.png'},angry\n"
                   f"{tmp_path / 'gone' / 'ds' / 'sadness' / 'sad0.png'},sad\n"
                   f"{tmp_path / 'gone' / 'ds' / 'sadness' / 'sad1.png'},sad\n"
                   f"{tmp_path / 'gone' / 'ds' / 'happiness' / 'happy1.png'},happy\n")
    bunch = load_labels_csv(csv, root=tmp_path / "new" / "ds", cache=False)
    assert bunch.target.tolist() == ["angry", "sad", "sad", "happy"]
    # and where they share a deeper folder with the missing ones, that one
    import shutil

    shutil.rmtree(old / "sadness")
    csv.write_text("image_path,label\n"
                   f"{old / 'anger' / 'angry0.png'},angry\n"
                   f"{old / 'sadness' / 'sad0.png'},sad\n"
                   f"{old / 'sadness' / 'sad1.png'},sad\n")
    bunch = load_labels_csv(csv, root=tmp_path / "new" / "ds", cache=False)
    assert bunch.target.tolist() == ["angry", "sad", "sad"]  # all three found
