"""``coolcolor plugins install | uninstall | status nuke | resolve`` — put a plugin where its host finds it.

The plugins run inside the host's own Python (Nuke's, or the one Resolve loads), which has neither
the coolcolor backend nor, usually, pyzmq. So an install is self-contained: the plugin's files, the
``coolcolor_protocol`` package and a pyzmq built for the *host's* interpreter all go into the
plugin's own folder, and the host is told where that folder is:

nuke
    ``~/.nuke/coolcolor/`` holds everything; a marked block in ``~/.nuke/init.py`` puts its ``lib``
    on ``sys.path`` and calls ``nuke.pluginAddPath`` (Foundry: "~/.nuke always comes first"; each
    plug-in folder's ``init.py`` runs, then ``menu.py`` in interactive sessions). A second block in
    ``~/.nuke/menu.py`` holds the plugin's menu lines, if its manifest declares any.
resolve
    The per-user Fusion folder (Blackmagic's README, "Using a script"): Linux
    ``~/.local/share/DaVinciResolve/Fusion``, macOS ``~/Library/Application Support/Blackmagic
    Design/DaVinci Resolve/Fusion``, Windows ``%APPDATA%\\Blackmagic Design\\DaVinci
    Resolve\\Support\\Fusion``. Its ``Scripts/<Page>/`` folders are menus (Workspace ▸ Scripts), so
    only small launcher scripts go there; the plugin itself goes to ``Fusion/CoolColor/``.

What a plugin registers is declared in ``coolcolor_plugin.json`` in its source folder
(``plugins/nuke/``, ``plugins/davinci_resolve/``)::

    {"exclude": ["tests", "*.md"],                          # not copied (plus __pycache__, *.pyc)
     "nuke": {"init_py": ["..."], "menu_py": ["import coolcolor_nuke.menu", "coolcolor_nuke.menu.install()"]},
     "resolve": {"scripts": [{"folder": "Edit", "name": "CoolColor Colorize",
                              "entry": "coolcolor_resolve.entry:colorize"}]}}

A Resolve launcher puts the plugin folder and its ``lib`` on ``sys.path`` and calls
``entry(globals())``, keeping what it returns referenced (a UI controller) in the script's globals:
Resolve injects ``resolve``/``fusion``/``bmd``/``app`` into the script's
globals, not into modules it imports.

Guarantees: every check (host, folder writable, host Python, pyzmq wheel, our blocks unedited) runs
before the first write, so a refused install changes nothing. Installing twice changes nothing
(files are rewritten only when their bytes differ). ``uninstall`` removes exactly the files in the
install record and our marked blocks, leaving every other byte of ``init.py``/``menu.py`` as it was.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coolcolor.errors import CoolColorError

HOSTS = ("nuke", "resolve")
PLUGIN_SOURCE_DIRS = {"nuke": "nuke", "resolve": "davinci_resolve"}
MANIFEST_NAME = "coolcolor_plugin.json"
RECORD_NAME = "coolcolor-install.json"
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", "tests", MANIFEST_NAME, ".*")
MIN_HOST_PYTHON = (3, 9)
BLOCK_BEGIN = "# >>> coolcolor plugin >>>"
BLOCK_END = "# <<< coolcolor plugin <<<"
BLOCK_NOTE = "# written by `coolcolor plugins install {host}`; removed by `coolcolor plugins uninstall {host}`; do not edit"
PROBE_TIMEOUT_S = 120

# Asked of the host's interpreter: enough to pick a pyzmq wheel (version, implementation, ABI, platform).
_PROBE = (
    "import json, platform, struct, sys, sysconfig;"
    "print(json.dumps({'version': list(sys.version_info[:3]), 'implementation': sys.implementation.name,"
    "'soabi': sysconfig.get_config_var('SOABI') or '', 'platform': sysconfig.get_platform(),"
    "'machine': platform.machine(), 'bits': struct.calcsize('P') * 8, 'executable': sys.executable}))"
)


class InstallError(CoolColorError):
    """A refused install/uninstall; nothing of the user's was changed."""


# ----------------------------------------------------------------------------------------- where
def nuke_home(home: Path) -> Path:
    """``~/.nuke`` — the same on Linux, macOS and Windows (``%USERPROFILE%\\.nuke``)."""
    return home / ".nuke"


def resolve_fusion_dir(platform: str, home: Path, env: dict[str, str]) -> Path:
    """The per-user Fusion folder of DaVinci Resolve (the one holding ``Scripts/``), per OS."""
    if platform.startswith("win"):
        appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(appdata) / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion"
    return home / ".local" / "share" / "DaVinciResolve" / "Fusion"


def host_root(host: str, target: str | None = None, platform: str | None = None,
              home: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """The host's per-user folder (``--target`` replaces it)."""
    if target:
        return Path(target).expanduser().absolute()
    home = home or Path.home()
    if host == "nuke":
        return nuke_home(home)
    return resolve_fusion_dir(platform or sys.platform, home, dict(os.environ) if env is None else env)


def plugin_dir(host: str, root: Path) -> Path:
    """Where the plugin itself lives inside the host's folder."""
    return root / ("coolcolor" if host == "nuke" else "CoolColor")


def default_plugin_source(host: str) -> Path:
    """``plugins/<host>/`` of the checkout this coolcolor runs from."""
    return Path(__file__).resolve().parents[2] / "plugins" / PLUGIN_SOURCE_DIRS[host]


# ----------------------------------------------------------------------------------------- host Python
@dataclass
class HostPython:
    executable: str
    version: tuple
    implementation: str
    soabi: str
    platform: str  # sysconfig.get_platform(): linux-x86_64, macosx-11.0-arm64, win-amd64
    machine: str
    is_current: bool  # the interpreter running coolcolor (no --host-python)

    @property
    def tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    def describe(self) -> str:
        return f"Python {'.'.join(map(str, self.version))} ({self.tag}, {self.platform}) at {self.executable}"

    def same_abi_as(self, other: HostPython) -> bool:
        return (self.version[:2], self.implementation, self.soabi, self.platform) == (
            other.version[:2], other.implementation, other.soabi, other.platform)


def probe_python(executable: str | None) -> HostPython:
    """Ask an interpreter for its version and ABI; InstallError if it does not run or is too old."""
    exe = executable or sys.executable
    if executable is not None:
        found = shutil.which(executable) if os.sep not in executable else executable
        if not found or not os.path.isfile(found):
            raise InstallError(f"--host-python {executable}: no such program")
        if not os.access(found, os.X_OK):
            raise InstallError(f"--host-python {executable}: not executable")
        exe = found
    try:
        out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                             check=False, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise InstallError(f"--host-python {exe} does not run: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"--host-python {exe} did not answer within {PROBE_TIMEOUT_S} s") from None
    info: Any = None
    if out.returncode == 0:
        try:
            info = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            info = None
    if not isinstance(info, dict) or not isinstance(info.get("version"), list):
        why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        raise InstallError(f"--host-python {exe} does not run as a Python 3.9+ interpreter: {why}")
    version = tuple(int(v) for v in info["version"][:3])
    if version[:2] < MIN_HOST_PYTHON:
        raise InstallError(f"--host-python {exe} is Python {'.'.join(map(str, version))}; the plugins need "
                           f"Python {MIN_HOST_PYTHON[0]}.{MIN_HOST_PYTHON[1]} or newer")
    if info.get("implementation") != "cpython":
        raise InstallError(f"--host-python {exe} is {info.get('implementation')}, not CPython; pyzmq wheels are "
                           "built for CPython")
    return HostPython(executable=exe, version=version, implementation="cpython", soabi=str(info.get("soabi", "")),
                      platform=str(info.get("platform", "")), machine=str(info.get("machine", "")),
                      is_current=executable is None)


def current_python() -> HostPython:
    import platform as _platform
    import sysconfig

    return HostPython(executable=sys.executable, version=tuple(sys.version_info[:3]),
                      implementation=sys.implementation.name, soabi=sysconfig.get_config_var("SOABI") or "",
                      platform=sysconfig.get_platform(), machine=_platform.machine(), is_current=True)


def wheel_platform_tags(host: HostPython) -> list[str]:
    """pip ``--platform`` tags a pyzmq wheel for this interpreter may carry (newest policy first)."""
    plat = host.platform.replace("-", "_").replace(".", "_")
    if plat.startswith("linux_"):
        arch = plat[len("linux_"):]
        return [f"manylinux_2_{m}_{arch}" for m in (28, 27, 26, 24, 17, 12, 5)] + [
            f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", plat]
    if plat.startswith("macosx_"):
        parts = plat.split("_")  # macosx, major, minor, arch
        arch = parts[-1]
        major = int(parts[1]) if len(parts) > 3 and parts[1].isdigit() else 11
        tags = []
        for m in range(major, 9, -1):
            minors = [0] if m >= 11 else list(range(15 if m == 10 else 0, -1, -1))
            for n in minors:
                tags += [f"macosx_{m}_{n}_{arch}", f"macosx_{m}_{n}_universal2"]
        return tags
    return [plat]  # win_amd64, win32, win_arm64


# ----------------------------------------------------------------------------------------- marked blocks
def _block_text(host: str, body: list[str]) -> str:
    inner = "\n".join(body) + "\n"
    digest = hashlib.sha256(inner.encode()).hexdigest()[:16]
    return f"{BLOCK_BEGIN}\n{BLOCK_NOTE.format(host=host)}\n{inner}{BLOCK_END} {digest}\n"


def _find_block(text: str, path: Path) -> tuple[int, int] | None:
    """(start, end) offsets of our block in ``text`` (end after its newline); None if absent.

    InstallError if the block is broken or was edited (its digest no longer matches its lines)."""
    start = text.find(BLOCK_BEGIN + "\n")
    if start < 0:
        if BLOCK_END in text:
            raise InstallError(f"{path}: the coolcolor block's begin line is missing; remove the block by hand")
        return None
    if start > 0 and text[start - 1] != "\n":
        raise InstallError(f"{path}: the coolcolor block's begin line was edited; remove the block by hand")
    end_at = text.find("\n" + BLOCK_END, start)
    if end_at < 0:
        raise InstallError(f"{path}: the coolcolor block has no end line; restore it or remove the block by hand")
    line_end = text.find("\n", end_at + 1)
    end = len(text) if line_end < 0 else line_end + 1
    end_line = text[end_at + 1:end].rstrip("\n")
    lines = text[start:end_at + 1].split("\n")  # begin, note, body…, ""
    inner = "\n".join(lines[2:-1]) + "\n" if len(lines) > 3 else ""
    digest = hashlib.sha256(inner.encode()).hexdigest()[:16]
    if end_line != f"{BLOCK_END} {digest}" or len(lines) < 3 or not lines[1].startswith("# written by"):
        first_line = text.count("\n", 0, start) + 1
        last_line = text.count("\n", 0, end_at + 1) + 1
        raise InstallError(f"{path}: the coolcolor block (lines {first_line}-{last_line}) was edited; undo the edit "
                           "or delete the block by hand, then run the command again")
    return start, end


@dataclass
class BlockEdit:
    path: Path
    old: bytes | None  # None: the file does not exist
    new: bytes | None  # None: delete the file
    record: dict[str, Any] = field(default_factory=dict)


def _plan_block_add(path: Path, host: str, body: list[str]) -> BlockEdit:
    old = path.read_bytes() if path.exists() else None
    text = (old or b"").decode("utf-8", errors="surrogateescape")
    block = _block_text(host, body)
    found = _find_block(text, path)
    if found:
        start, end = found
        new_text = text[:start] + block + text[end:]
        rec = {"found": True}  # already there: the first install's record of the file stays
    else:
        added_newline = bool(text) and not text.endswith("\n")
        new_text = text + ("\n" if added_newline else "") + block
        rec = {"created": old is None, "added_newline": added_newline}
    return BlockEdit(path, old, new_text.encode("utf-8", errors="surrogateescape"), rec)


def _plan_block_remove(path: Path, rec: dict[str, Any]) -> BlockEdit | None:
    if not path.exists():
        return None
    old = path.read_bytes()
    text = old.decode("utf-8", errors="surrogateescape")
    found = _find_block(text, path)
    if not found:
        return None
    start, end = found
    if rec.get("added_newline") and start > 0 and text[start - 1] == "\n":
        start -= 1
    new_text = text[:start] + text[end:]
    new = None if (rec.get("created") and new_text == "") else new_text.encode("utf-8", errors="surrogateescape")
    return BlockEdit(path, old, new)


# ----------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    host: str
    root: Path
    plugin_root: Path
    files: dict[str, bytes]  # path relative to root → content
    blocks: list[BlockEdit]
    python: HostPython
    pyzmq_note: str
    pyzmq_version: str


def _load_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise InstallError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise InstallError(f"{path}: must hold a JSON object")
    return manifest


def _excluded(rel: Path, patterns: tuple) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in patterns)


def _tree_files(source: Path, dest: str, exclude: tuple) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_file() and not _excluded(rel, exclude):
            out[str(Path(dest) / rel)] = path.read_bytes()
    return out


def _protocol_files(dest: str) -> dict[str, bytes]:
    import coolcolor_protocol

    package = Path(coolcolor_protocol.__file__).resolve().parent
    return _tree_files(package, str(Path(dest) / "coolcolor_protocol"), ("__pycache__", "*.pyc", "*.pyo"))


def _installed_pyzmq_files(dest: str) -> tuple[dict[str, bytes], str]:
    """The pyzmq of the running interpreter, file by file as its RECORD lists them."""
    from importlib import metadata

    try:
        dist = metadata.distribution("pyzmq")
    except metadata.PackageNotFoundError:
        raise InstallError("pyzmq is not installed for this Python; pass --host-python or install pyzmq") from None
    out: dict[str, bytes] = {}
    for f in dist.files or []:
        if ".." in Path(str(f)).parts or f.suffix in (".pyc",) or "__pycache__" in Path(str(f)).parts:
            continue  # scripts outside site-packages, byte code
        located = Path(str(f.locate()))
        if located.is_file():
            out[str(Path(dest) / str(f))] = located.read_bytes()
    if not any(Path(k).relative_to(dest).parts[0] == "zmq" for k in out):
        raise InstallError(f"pyzmq {dist.version} of this Python has no zmq package files to copy")
    return out, dist.version


def _downloaded_pyzmq_files(host: HostPython, dest: str, wheel_dir: str | None) -> tuple[dict[str, bytes], str]:
    """pyzmq for another interpreter: ``pip install --target`` of a binary wheel for its version/ABI/platform."""
    with tempfile.TemporaryDirectory(prefix="coolcolor-pyzmq.") as tmp:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", "--no-cache-dir",
               "--target", tmp, "--only-binary=:all:", "--no-deps", "--implementation", "cp",
               "--python-version", f"{host.version[0]}.{host.version[1]}", "--abi", host.tag]
        for tag in wheel_platform_tags(host):
            cmd += ["--platform", tag]
        if wheel_dir:
            cmd += ["--no-index", "--find-links", wheel_dir]
        cmd.append("pyzmq>=22")
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InstallError("pip did not finish fetching a pyzmq wheel within 600 s") from None
        if out.returncode != 0:
            raise InstallError(f"no pyzmq wheel matches the host's {host.describe()}"
                               + (f" in {wheel_dir}" if wheel_dir else "")
                               + "; install pyzmq into that Python yourself, or give --wheel-dir with one")
        files = _tree_files(Path(tmp), dest, ("__pycache__", "*.pyc", "bin"))
        version = "?"
        for name in os.listdir(tmp):
            if name.startswith("pyzmq-") and name.endswith(".dist-info"):
                version = name[len("pyzmq-"):-len(".dist-info")]
        return files, version


def _launcher(entry: str, plugin_root: Path) -> bytes:
    module, _, func = entry.partition(":")
    return (
        "# CoolColor launcher, written by `coolcolor plugins install resolve` (removed by uninstall).\n"
        "# Resolve runs this file from Workspace > Scripts; the plugin itself lives in the folder below.\n"
        "import sys\n"
        f"for _p in ({str(plugin_root)!r}, {str(plugin_root / 'lib')!r}):\n"
        "    if _p not in sys.path:\n"
        "        sys.path.insert(0, _p)\n"
        f"from {module} import {func} as _coolcolor_entry\n"
        "COOLCOLOR_CONTROLLER = _coolcolor_entry(globals())  # kept referenced while Resolve's UI runs\n"
    ).encode()


def plan_install(host: str, *, target: str | None = None, host_python: str | None = None,
                 source: str | None = None, wheel_dir: str | None = None) -> Plan:
    """Everything install will write, computed and checked without writing anything."""
    if host not in HOSTS:
        raise InstallError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    src = Path(source).absolute() if source else default_plugin_source(host)
    if not src.is_dir():
        raise InstallError(f"plugin sources not found: {src} (run coolcolor from a checkout, or give --from DIR)")
    manifest = _load_manifest(src)
    root = host_root(host, target)
    _check_writable(root)
    python = probe_python(host_python) if host_python else current_python()
    pr = plugin_root = plugin_dir(host, root)
    rel = str(plugin_root.relative_to(root))
    exclude = DEFAULT_EXCLUDE + tuple(manifest.get("exclude", []))
    files = _tree_files(src, rel, exclude)
    files.update(_protocol_files(rel))
    lib = str(Path(rel) / "lib")
    if python.is_current or python.same_abi_as(current_python()):
        zmq_files, zmq_version = _installed_pyzmq_files(lib)
        note = (f"pyzmq {zmq_version}: copied from this Python ({python.describe()})"
                + ("; no --host-python given, so the host's Python must be this same version and platform"
                   if python.is_current else ""))
    else:
        zmq_files, zmq_version = _downloaded_pyzmq_files(python, lib, wheel_dir)
        note = f"pyzmq {zmq_version}: wheel for the host's {python.describe()}"
    files.update(zmq_files)
    blocks: list[BlockEdit] = []
    section = manifest.get(host, {}) if isinstance(manifest.get(host, {}), dict) else {}
    if host == "nuke":
        init_body = ["import sys", "import nuke",
                     f"if {str(pr / 'lib')!r} not in sys.path:", f"    sys.path.insert(0, {str(pr / 'lib')!r})",
                     f"nuke.pluginAddPath({str(pr)!r})", *map(str, section.get("init_py", []))]
        blocks.append(_plan_block_add(root / "init.py", host, init_body))
        menu_lines = [str(line) for line in section.get("menu_py", [])]
        if menu_lines:
            blocks.append(_plan_block_add(root / "menu.py", host, menu_lines))
    else:
        scripts = section.get("scripts", [])
        if not scripts:
            raise InstallError(f"{src / MANIFEST_NAME}: declares no Resolve menu scripts "
                               '("resolve": {"scripts": [{"folder": "Edit", "name": …, "entry": "module:function"}]})')
        for script in scripts:
            folder, name, entry = script.get("folder", "Edit"), script.get("name"), script.get("entry", "")
            if folder not in ("Utility", "Comp", "Tool", "Edit", "Color", "Deliver") or not name or ":" not in entry:
                raise InstallError(f"{src / MANIFEST_NAME}: bad Resolve script entry {script!r}")
            files[str(Path("Scripts") / folder / f"{name}.py")] = _launcher(entry, pr)
    for edit in blocks:
        if edit.old is not None and not os.access(edit.path, os.W_OK):
            raise InstallError(f"cannot install: {edit.path} is not writable")
    return Plan(host, root, plugin_root, files, blocks, python, note, zmq_version)


def _check_writable(root: Path) -> None:
    """The nearest existing folder of ``root`` must be a folder we can create files in (tested by doing it)."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InstallError(f"cannot install into {root}: {probe} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".coolcolor-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InstallError(f"cannot install into {root}: {probe} is not writable ({exc.strerror or exc})") from None


# ----------------------------------------------------------------------------------------- do it
def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.coolcolor-tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: the old file stays whole, no temporary is left, the real name is given
        tmp.unlink(missing_ok=True)
        raise InstallError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def _read_record(plugin_root: Path) -> dict[str, Any] | None:
    path = plugin_root / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise InstallError(f"{path}: the install record is damaged; remove {plugin_root} by hand") from None
    return record if isinstance(record, dict) else None


def install(host: str, *, target: str | None = None, host_python: str | None = None, source: str | None = None,
            wheel_dir: str | None = None) -> tuple[Plan, int]:
    """Install (or bring up to date); returns the plan and how many files/blocks were (re)written."""
    plan = plan_install(host, target=target, host_python=host_python, source=source, wheel_dir=wheel_dir)
    previous = _read_record(plan.plugin_root) or {}
    prev_blocks = previous.get("blocks", {})
    block_records = {}
    for edit in plan.blocks:
        key = str(edit.path.relative_to(plan.root))
        if edit.record.get("found"):
            block_records[key] = prev_blocks.get(key, {"created": False, "added_newline": False})
        else:
            block_records[key] = edit.record
    stale = sorted(set(previous.get("files", [])) - set(plan.files))
    root_created = previous.get("root_created", not plan.root.exists())
    if previous:  # the first install's answer stays (a record before created_dirs: the root at most)
        created_dirs = previous.get("created_dirs", [str(plan.root)] if root_created else [])
    else:
        created_dirs = [str(d) for d in _missing_folders(plan.root)]
    record = {
        "format": "coolcolor-plugin-install", "version": 1, "host": host, "root": str(plan.root),
        "plugin_dir": str(plan.plugin_root), "root_created": root_created, "created_dirs": created_dirs,
        "files": sorted(plan.files), "blocks": block_records,
        "host_python": {"executable": plan.python.executable, "version": ".".join(map(str, plan.python.version)),
                        "tag": plan.python.tag, "platform": plan.python.platform,
                        "given": not plan.python.is_current},
        "pyzmq": plan.pyzmq_version,
    }
    changed = 0
    for rel in stale:  # left by an older install of a plugin that has since dropped the file
        with _suppress_oserror():
            (plan.root / rel).unlink()
            changed += 1
    for rel, data in plan.files.items():
        changed += _write_if_changed(plan.root / rel, data)
    for edit in plan.blocks:
        if edit.new != edit.old:
            assert edit.new is not None
            _write_if_changed(edit.path, edit.new)
            changed += 1
    changed += _write_if_changed(plan.plugin_root / RECORD_NAME, (json.dumps(record, indent=2) + "\n").encode())
    _remove_empty_dirs(plan.root, [plan.root / rel for rel in stale])
    return plan, changed


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first: what an install creates
    (``~/.local/share/DaVinciResolve/Fusion`` and ``DaVinciResolve`` on a machine without Resolve)."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty_dirs(root: Path, removed_files: list[Path]) -> None:
    """Remove the folders that removing these files emptied, up to (not including) ``root``."""
    dirs = sorted({p.parent for p in removed_files}, key=lambda p: len(p.parts), reverse=True)
    for d in dirs:
        while d != root and root in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent


def uninstall(host: str, *, target: str | None = None) -> tuple[Path, int]:
    """Remove exactly what install wrote; returns (plugin folder, files and blocks removed)."""
    if host not in HOSTS:
        raise InstallError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    root = host_root(host, target)
    pr = plugin_dir(host, root)
    record = _read_record(pr)
    if record is None:
        raise InstallError(f"the {host} plugin is not installed in {root} (no {pr / RECORD_NAME})")
    edits = []
    for rel, rec in record.get("blocks", {}).items():
        edit = _plan_block_remove(root / rel, rec)  # refuses an edited block before anything is removed
        if edit:
            edits.append(edit)
    _check_writable(root)
    removed: list[Path] = []
    for rel in record.get("files", []):
        path = root / rel
        if root not in path.resolve().parents:
            continue  # never outside the host folder, whatever the record says
        with _suppress_oserror():
            path.unlink()
            removed.append(path)
        if path.suffix == ".py":  # byte code the host compiled from our module
            for cached in path.parent.glob(f"__pycache__/{glob.escape(path.stem)}.*.pyc"):
                with _suppress_oserror():
                    cached.unlink()
                    removed.append(cached)
    for edit in edits:
        if edit.new is None:
            edit.path.unlink()
        else:
            _write_if_changed(edit.path, edit.new)
    (pr / RECORD_NAME).unlink()
    removed.append(pr / RECORD_NAME)
    _remove_empty_dirs(root, removed)
    created = record.get("created_dirs", [str(root)] if record.get("root_created") else [])
    for folder in sorted((Path(d) for d in created), key=lambda p: len(p.parts), reverse=True):
        with _suppress_oserror():
            folder.rmdir()  # only if empty: the user (or the host) may have put things there since
    return pr, len(removed) + len(edits)


def status(host: str, *, target: str | None = None) -> tuple[bool, list[str]]:
    """(healthy, report lines): what is installed where, and whether pyzmq and the protocol import in the
    host's Python (the one given at install; else this one), from the plugin's own folder only."""
    if host not in HOSTS:
        raise InstallError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    root = host_root(host, target)
    pr = plugin_dir(host, root)
    record = _read_record(pr)
    if record is None:
        return False, [f"{host}: not installed in {root}"]
    files = record.get("files", [])
    missing = [rel for rel in files if not (root / rel).is_file()]
    lines = [f"{host}: installed in {pr} ({len(files)} files, {len(missing)} missing)"]
    ok = not missing
    for rel, _rec in sorted(record.get("blocks", {}).items()):
        path = root / rel
        try:
            present = path.exists() and _find_block(path.read_text(errors="surrogateescape"), path) is not None
            state = "present" if present else "MISSING"
        except InstallError:
            present, state = False, "EDITED"
        ok &= present
        lines.append(f"  block in {path}: {state}")
    for rel in files:
        if rel.startswith("Scripts" + os.sep) or rel.startswith("Scripts/"):
            lines.append(f"  menu script: {root / rel}")
    hp = record.get("host_python", {})
    exe = hp.get("executable") or sys.executable
    code = ("import sys; sys.path[:0] = [sys.argv[1] + '/lib', sys.argv[1]];"
            "import zmq, coolcolor_protocol;"
            "ok = all(m.__file__.startswith(sys.argv[1]) for m in (zmq, coolcolor_protocol));"
            "print(zmq.__version__, coolcolor_protocol.__version__, 'own' if ok else 'foreign')")
    try:
        out = subprocess.run([exe, "-I", "-S", "-B", "-c", code, str(pr)], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
        words = out.stdout.split()
        imported = out.returncode == 0 and len(words) == 3 and words[2] == "own"
        detail = (f"pyzmq {words[0]}, coolcolor_protocol {words[1]}" if imported
                  else (out.stderr.strip().splitlines() or ["no output"])[-1])
    except (OSError, subprocess.TimeoutExpired) as exc:
        imported, detail = False, f"cannot run it: {exc}"
    who = f"host Python {hp.get('version', '?')} at {exe}" + ("" if hp.get("given") else " (this Python; no --host-python was given)")
    lines.append(f"  pyzmq imports in the {who}: {'yes' if imported else 'NO'} ({detail})")
    return ok and imported, lines


# ----------------------------------------------------------------------------------------- CLI
PLUGINS_HELP = """\
coolcolor plugins install | uninstall | status nuke | resolve: put a plugin where its host finds it.

The plugins run inside the host's own Python, so an install is self-contained: the plugin, the
coolcolor_protocol package and a pyzmq built for the host's interpreter (--host-python) go into one
folder, and the host is told where it is:

  nuke     ~/.nuke/coolcolor/, and a marked block in ~/.nuke/init.py (and menu.py) that loads it
  resolve  the per-user Fusion folder: Linux ~/.local/share/DaVinciResolve/Fusion, macOS
           ~/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion, Windows
           %APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion; the plugin goes to
           CoolColor/ there, a launcher to Scripts/Edit/ (Workspace > Scripts in Resolve)

Every check runs before the first write, so a refused install changes nothing; installing twice
changes nothing. uninstall removes exactly what install wrote (our blocks, and the folders it created
once they are empty), leaving every other byte of init.py and menu.py as it was."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plugins", help="install, remove or check the Nuke and DaVinci Resolve plugins",
                              description=PLUGINS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="plugins_command", metavar="ACTION")
    for action, help_text in (("install", "install or update a host's plugin (idempotent)"),
                              ("uninstall", "remove exactly what install wrote"),
                              ("status", "what is installed where, and whether pyzmq imports in the host's Python")):
        q = sub.add_parser(action, help=help_text)
        q.add_argument("host", metavar="HOST", help="nuke or resolve")
        q.add_argument("--target", metavar="DIR", help="the host's per-user folder (default: ~/.nuke for Nuke, the "
                       "per-user Fusion folder for Resolve)")
        if action == "install":
            q.add_argument("--host-python", metavar="PATH", help="the host's Python interpreter: pyzmq is fetched "
                           "for its version and ABI (default: this Python)")
            q.add_argument("--from", dest="source", metavar="DIR", help="plugin sources (default: plugins/<host>/ "
                           "of this checkout)")
            q.add_argument("--wheel-dir", metavar="DIR", help="look for the pyzmq wheel only in DIR (offline)")
        q.set_defaults(func=_run, plugins_action=action)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    if args.plugins_action == "install":
        if args.wheel_dir and not os.path.isdir(args.wheel_dir):
            raise InstallError(f"--wheel-dir {args.wheel_dir} is not a folder")
        plan, changed = install(args.host, target=args.target, host_python=args.host_python, source=args.source,
                                wheel_dir=args.wheel_dir)
        verb = "installed" if changed else "already installed, nothing changed:"
        print(f"{args.host} plugin {verb} {plan.plugin_root} ({len(plan.files)} files"
              + "".join(f", block in {b.path}" for b in plan.blocks) + ")")
        print(plan.pyzmq_note)
        return 0
    if args.plugins_action == "uninstall":
        folder, count = uninstall(args.host, target=args.target)
        print(f"{args.host} plugin removed from {folder} ({count} files and blocks)")
        return 0
    ok, lines = status(args.host, target=args.target)
    print("\n".join(lines))
    return 0 if ok else 1
