"""The real-footage catalog: which real colour videos and photographs CoolColor trains and is judged on.

Every file comes from a package registry (Debian packages, scikit-image, scikit-learn), never from a download
at run time, and no image ships with CoolColor: ``catalog.json`` names each file by package, path inside the
package, sha256 and licence, with a caption written by a person after looking at it (and, for evaluation
items, a "wrong colours" caption naming the same things in other colours, the benchmark's control).

``install_data`` puts the Debian files in a data folder without root (``apt-get download`` + ``dpkg-deb``);
the Python packages' files are read where pip put them. Each file is checked against its sha256 before use.

Roles: ``eval`` items are held out of every training set (the benchmark's clips); ``train`` items feed
``coolcolor.real.source.RealSource``. A test checks that no file is both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from coolcolor.errors import InputError
from coolcolor.references import file_sha256

CATALOG_PATH = Path(__file__).with_name("catalog.json")
DATA_ENV = "COOLCOLOR_REAL_DATA"
ROLES = ("eval", "train")
KINDS = ("video", "photo", "cutout")


@dataclass(frozen=True)
class Package:
    name: str
    kind: str  # "deb" or "python"
    licence: str
    version: str = ""  # deb: the exact version the sha256s were taken from
    module: str = ""  # python: the importable module whose folder holds the files


@dataclass(frozen=True)
class RealItem:
    """One real file: where it comes from, its hash, and what a person saw in it."""

    id: str
    package: str
    path: str  # inside the package (deb: the extracted tree; python: the module's folder)
    sha256: str
    role: str
    kind: str
    caption: str = ""
    wrong_caption: str = ""
    noun: str = ""  # cut-outs: what the object is (its colour word is measured from its pixels)
    licence: str = ""  # where it differs from, or refines, the package's
    frames: tuple[int, ...] = field(default=())  # videos: [first, end) frames the file holds


@dataclass(frozen=True)
class Catalog:
    packages: dict[str, Package]
    items: tuple[RealItem, ...]

    def select(self, role: str | None = None, kind: str | None = None) -> list[RealItem]:
        return [i for i in self.items if (role is None or i.role == role) and (kind is None or i.kind == kind)]

    def item(self, item_id: str) -> RealItem:
        for i in self.items:
            if i.id == item_id:
                return i
        raise InputError(f"no real-footage item {item_id!r}; known: {', '.join(i.id for i in self.select('eval'))}, …")

    def licence(self, item: RealItem) -> str:
        return item.licence or self.packages[item.package].licence


def parse_catalog(data: dict[str, Any], where: str = "catalog") -> Catalog:
    """Validate a catalog document; every problem is an ``InputError`` naming the item."""
    try:
        packages = {name: Package(name=name, **spec) for name, spec in data["packages"].items()}
        items = tuple(RealItem(**{**e, "frames": tuple(e.get("frames", ()))}) for e in data["items"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where}: malformed ({exc})") from exc
    seen: dict[str, str] = {}
    for item in items:
        if item.package not in packages:
            raise InputError(f"{where}: item {item.id} names unknown package {item.package!r}")
        if item.role not in ROLES or item.kind not in KINDS:
            raise InputError(f"{where}: item {item.id} has role {item.role!r} / kind {item.kind!r}")
        if item.id in seen:
            raise InputError(f"{where}: item id {item.id} appears twice")
        if item.sha256 in seen.values():
            other = next(k for k, v in seen.items() if v == item.sha256)
            raise InputError(f"{where}: items {other} and {item.id} are the same file")
        seen[item.id] = item.sha256
        if item.kind != "cutout" and not item.caption:
            raise InputError(f"{where}: item {item.id} has no caption")
        if item.role == "eval" and not item.wrong_caption:
            raise InputError(f"{where}: evaluation item {item.id} has no wrong-colours caption")
    return Catalog(packages, items)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    return parse_catalog(json.loads(CATALOG_PATH.read_text(encoding="utf-8")), str(CATALOG_PATH))


def default_data_dir() -> Path:
    """``$COOLCOLOR_REAL_DATA``, else ``~/.cache/coolcolor/real`` (where ``coolcolor real install`` puts files)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path.home() / ".cache" / "coolcolor" / "real"


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """A catalog image as float32 in [0, 1], RGB (RGBA when ``flags`` keeps an alpha channel; other channel
    counts as decoded); a one-line ``InputError`` naming the file when it cannot be decoded."""
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), flags)
    if image is None:
        raise InputError(f"{path}: not a readable image")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return image.astype(np.float32) / scale


def _python_root(package: Package) -> Path | None:
    spec = importlib.util.find_spec(package.module)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def item_path(item: RealItem, data_dir: Path | None = None, catalog: Catalog | None = None) -> Path:
    """Where the item's file is on this machine (not checked: see ``verified_path``)."""
    catalog = catalog or load_catalog()
    package = catalog.packages[item.package]
    if package.kind == "python":
        root = _python_root(package)
        if root is None:
            raise InputError(f"{item.id}: Python package {package.name} is not installed (pip install {package.name})")
        return root / item.path
    return (data_dir or default_data_dir()) / package.name / item.path


def verified_path(item: RealItem, data_dir: Path | None = None, catalog: Catalog | None = None) -> Path:
    """The item's file, checked against its sha256; a one-line error says how to install it otherwise."""
    path = item_path(item, data_dir, catalog)
    if not path.is_file():
        raise InputError(f"{item.id}: {path} is missing; install the real-footage data with `coolcolor real install`")
    if file_sha256(str(path)) != item.sha256:
        raise InputError(f"{item.id}: {path} does not match its sha256 in the catalog (a different package version?)")
    return path


def install_data(data_dir: Path | None = None, roles: tuple[str, ...] = ROLES, log=print) -> Path:
    """Fetch the catalog's Debian packages with ``apt-get download`` and extract just the listed files.

    Needs no root: ``apt-get download`` writes into the current folder and ``dpkg-deb`` extracts anywhere.
    Files already present with the right hash are kept, so a second run costs nothing.
    """
    catalog = load_catalog()
    dest = data_dir or default_data_dir()
    wanted: dict[str, list[RealItem]] = {}
    for item in catalog.items:
        if item.role in roles and catalog.packages[item.package].kind == "deb":
            path = item_path(item, dest, catalog)
            if not (path.is_file() and file_sha256(str(path)) == item.sha256):
                wanted.setdefault(item.package, []).append(item)
    for item in catalog.items:  # the Python packages' files: present and intact?
        if item.role in roles and catalog.packages[item.package].kind == "python":
            verified_path(item, dest, catalog)
    if not wanted:
        log(f"real-footage data complete in {dest}")
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise InputError(f"`coolcolor real install` needs {tool} (a Debian or Ubuntu system) to fetch "
                             f"{', '.join(sorted(wanted))}")
    with tempfile.TemporaryDirectory(prefix="coolcolor-real-") as tmp:
        for name, items in sorted(wanted.items()):
            package = catalog.packages[name]
            log(f"fetching {name} {package.version} ({len(items)} file(s))")
            run = subprocess.run(["apt-get", "download", f"{name}={package.version}"], cwd=tmp,
                                 capture_output=True, text=True)
            debs = sorted(Path(tmp).glob(f"{name}_*.deb"))
            if run.returncode != 0 or not debs:
                raise InputError(f"apt-get download {name}={package.version} failed: "
                                 f"{(run.stderr or run.stdout).strip().splitlines()[-1:] or ['no .deb written']}")
            members = [f"./{item.path}" for item in items]
            tree = Path(tmp) / name
            tree.mkdir()
            tar = subprocess.run(f"dpkg-deb --fsys-tarfile {shlex.quote(str(debs[0]))} | tar -x -C {shlex.quote(str(tree))} "
                                 + " ".join(shlex.quote(m) for m in members),
                                 shell=True, capture_output=True, text=True)
            if tar.returncode != 0:
                raise InputError(f"extracting {name}: {tar.stderr.strip().splitlines()[-1:]}")
            for item in items:
                target = item_path(item, dest, catalog)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(tree / item.path), target)
                verified_path(item, dest, catalog)
            debs[0].unlink()
    log(f"real-footage data complete in {dest}")
    return dest
