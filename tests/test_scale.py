"""Scale: large folders are listed and decoded once, without file handles left open,
and a FER2013-sized set goes through loading, fit and predict within 3 GB."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_sklearn.datasets import _decode, load_image_folder

CLASSES = ("angry", "happy", "sad", "neutral")


def _many_images(root, n):
    """``n`` small PNGs (flat gray, so they write fast) over four class folders."""
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (48, 48), i % 251).save(root / CLASSES[i % 4] / f"{i:06d}.png")


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def _check_listing_and_decoding(tmp_path, monkeypatch, n):
    root = tmp_path / "many"
    _many_images(root, n)
    reads, fds = [], []
    real_read, real_decode = Path.read_bytes, _decode.decode_image

    def counted_read(self):
        reads.append(self.name)
        return real_read(self)

    def watched_decode(raw, size, counts):
        if len(reads) % 1000 == 0:
            fds.append(_open_fds())
        return real_decode(raw, size, counts)

    monkeypatch.setattr(Path, "read_bytes", counted_read)
    monkeypatch.setattr(_decode, "decode_image", watched_decode)
    before = _open_fds()
    bunch = load_image_folder(root, cache=False)
    assert len(bunch.data) == n
    assert len(reads) == n and len(set(reads)) == n  # every file read exactly once
    assert max(fds) <= before + 2 and _open_fds() <= before  # none left open
    assert bunch.data.dtype == np.uint8 and bunch.data.nbytes == n * 48 * 48


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_folder_is_read_once_without_holding_files_open(tmp_path, monkeypatch):
    _check_listing_and_decoding(tmp_path, monkeypatch, 2_000)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_200k_image_folder_is_read_once_without_holding_files_open(tmp_path, monkeypatch):
    _check_listing_and_decoding(tmp_path, monkeypatch, 200_000)


FER_SIZED = textwrap.dedent("""
    import resource, sys, zipfile, io
    import numpy as np
    from PIL import Image
    from fer_sklearn import CNNClassifier
    from fer_sklearn.datasets import make_synthetic_faces, load_image_folder

    path = sys.argv[1]
    faces = make_synthetic_faces(35_887, random_state=0)
    with zipfile.ZipFile(path, "w") as zf:  # FER2013's size, as a zip of PNGs
        for i, (img, label) in enumerate(zip(faces.data, faces.target)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(f"faces/{label}/{i:05d}.png", buf.getvalue())
    del faces
    bunch = load_image_folder(path, cache=False)
    clf = CNNClassifier(max_epochs=1, batch_size=128, module__width=16, module__depth=3,
                        random_state=0).fit(bunch.data, bunch.target)
    proba = clf.predict_proba(bunch.data)
    assert proba.shape == (35_887, 7)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
""")


@pytest.mark.slow
def test_fer2013_sized_set_loads_fits_and_predicts_within_3_gb(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FER_SIZED, str(tmp_path / "faces.zip")],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stdout.strip().splitlines()[-1])
    print(f"peak RSS {peak / 2**30:.2f} GiB")
    assert peak <= 3 * 2**30
