"""Listing a folder of images."""

import os
from pathlib import Path


def _contains(outer, inner):
    """Whether the real folder ``outer`` is ``inner`` or holds it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def walk(path):
    """Sorted files and folders below the folder ``path``, following folder
    links (a class folder may be a link to another disk). A link to a folder
    that holds the one it sits in (a loop, or a link up to the root or above
    it) is left out."""
    path = Path(path)
    files, folders = [], []
    for root, dirs, names in os.walk(path, followlinks=True):
        here = Path(root)
        chain = [os.path.realpath(p) for p in
                 [here, *here.parents[:len(here.relative_to(path).parts)]]]
        dirs[:] = [d for d in dirs if not (
            os.path.islink(here / d)
            and any(_contains(os.path.realpath(here / d), c) for c in chain))]
        folders += [here / d for d in dirs]
        # a dangling link is listed too: reading it fails, and says so
        files += [here / n for n in names if os.path.isfile(here / n)
                  or (os.path.islink(here / n) and not os.path.exists(here / n))]
    return sorted(files), sorted(folders)
