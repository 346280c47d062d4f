"""``coolcolor plugins install|uninstall|status``: temporary home folders, this Python standing in for the host's.

No network: pyzmq is copied from this interpreter's own install; the "no wheel" case points pip at an
empty ``--wheel-dir``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coolcolor.cli import main
from coolcolor.plugins_install import BLOCK_BEGIN, BLOCK_END, resolve_fusion_dir, wheel_platform_tags

USER_INIT = b"import nuke\nnuke.pluginAddPath('/studio/tools')  # no newline at the end"
USER_MENU = b"# studio menu\r\nnuke.menu('Nodes').addCommand('Studio/Thing', 'thing()')\r\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def nuke_source(tmp_path):
    src = tmp_path / "src_nuke"
    (src / "coolcolor_nuke").mkdir(parents=True)
    (src / "coolcolor_nuke" / "__init__.py").write_text("import coolcolor_protocol, zmq\nLOADED = True\n")
    (src / "init.py").write_text("# plugin's own init.py\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("raise SystemExit('tests must not be installed')\n")
    (src / "coolcolor_plugin.json").write_text(json.dumps(
        {"exclude": ["*.md"], "nuke": {"menu_py": ["import coolcolor_nuke", "nuke.menu('Nodes').addMenu('CoolColor')"]}}))
    (src / "NOTES.md").write_text("not installed\n")
    return src


@pytest.fixture
def resolve_source(tmp_path):
    src = tmp_path / "src_resolve"
    (src / "coolcolor_resolve").mkdir(parents=True)
    (src / "coolcolor_resolve" / "__init__.py").write_text("")
    (src / "coolcolor_resolve" / "entry.py").write_text(
        "import json, sys, coolcolor_protocol, zmq\n"
        "def colorize(g):\n"
        "    print(json.dumps({'resolve': g.get('resolve'), 'protocol': coolcolor_protocol.__file__,"
        " 'zmq': zmq.__file__}))\n")
    (src / "coolcolor_plugin.json").write_text(json.dumps(
        {"resolve": {"scripts": [{"folder": "Edit", "name": "CoolColor Colorize",
                                  "entry": "coolcolor_resolve.entry:colorize"}]}}))
    return src


def run_cli(capsys, *argv):
    code = main(["plugins", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_isolated(code: str, *args: str) -> subprocess.CompletedProcess:
    """This Python without site-packages (-I -S): only what the plugin folder provides can be imported."""
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code, *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_nuke_install_is_self_contained_idempotent_and_uninstall_restores_user_files(home, nuke_source, capsys):
    nuke_dir = home / ".nuke"
    nuke_dir.mkdir()
    (nuke_dir / "init.py").write_bytes(USER_INIT)
    (nuke_dir / "menu.py").write_bytes(USER_MENU)

    code, out, err = run_cli(capsys, "install", "nuke", "--from", str(nuke_source))
    assert code == 0, err
    assert "no --host-python given" in out  # says that this Python stands in for the host's
    plugin = nuke_dir / "coolcolor"
    assert (plugin / "coolcolor_nuke" / "__init__.py").is_file() and (plugin / "init.py").is_file()
    assert not (plugin / "tests").exists() and not (plugin / "NOTES.md").exists()
    assert not (plugin / "coolcolor_plugin.json").exists()
    assert (plugin / "coolcolor_protocol" / "jobspec.py").is_file()
    assert (plugin / "lib" / "zmq" / "__init__.py").is_file()
    init_text = (nuke_dir / "init.py").read_bytes()
    assert init_text.startswith(USER_INIT + b"\n" + BLOCK_BEGIN.encode())
    assert f"nuke.pluginAddPath({str(plugin)!r})".encode() in init_text
    menu_text = (nuke_dir / "menu.py").read_bytes()
    assert menu_text.startswith(USER_MENU) and b"import coolcolor_nuke\n" in menu_text

    # The init.py block works in a Python that has nothing installed: a stand-in `nuke` module records
    # pluginAddPath; the plugin path then gives the plugin, the protocol and pyzmq from its own folder.
    probe = (
        "import sys, types, json\n"
        "nuke = types.ModuleType('nuke'); added = []\n"
        "nuke.pluginAddPath = lambda p: (added.append(p), sys.path.insert(0, p))\n"
        "sys.modules['nuke'] = nuke\n"
        "exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), {})\n"
        "import coolcolor_nuke, coolcolor_protocol, zmq\n"
        "print(json.dumps({'added': added, 'files': [coolcolor_protocol.__file__, zmq.__file__],"
        " 'zmq': zmq.zmq_version()}))\n"
    )
    result = run_isolated(probe, str(nuke_dir / "init.py"))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["added"][-1] == str(plugin)
    assert all(f.startswith(str(plugin)) for f in seen["files"]), seen

    before = snapshot(home)
    code, out, _ = run_cli(capsys, "install", "nuke", "--from", str(nuke_source))
    assert code == 0 and "nothing changed" in out
    assert snapshot(home) == before  # same bytes, not even rewritten

    code, out, _ = run_cli(capsys, "status", "nuke")
    assert code == 0, out
    assert f"installed in {plugin}" in out and "pyzmq imports in the host Python" in out and ": yes (pyzmq" in out

    # the user edits their files outside our block; uninstall keeps those edits and removes only ours
    (nuke_dir / "menu.py").write_bytes(b"# added later\n" + (nuke_dir / "menu.py").read_bytes() + b"# tail\n")
    (plugin / "coolcolor_nuke" / "__pycache__").mkdir()
    (plugin / "coolcolor_nuke" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"host byte code")
    code, out, _ = run_cli(capsys, "uninstall", "nuke")
    assert code == 0, out
    assert (nuke_dir / "init.py").read_bytes() == USER_INIT
    assert (nuke_dir / "menu.py").read_bytes() == b"# added later\n" + USER_MENU + b"# tail\n"
    assert not plugin.exists()
    assert sorted(p.name for p in nuke_dir.iterdir()) == ["init.py", "menu.py"]
    code, out, _ = run_cli(capsys, "status", "nuke")
    assert code == 1 and "not installed" in out


def test_nuke_install_into_a_fresh_home_creates_the_files_and_uninstall_removes_them(home, nuke_source, capsys):
    assert run_cli(capsys, "install", "nuke", "--from", str(nuke_source))[0] == 0
    assert (home / ".nuke" / "init.py").read_text().startswith(BLOCK_BEGIN)
    assert run_cli(capsys, "uninstall", "nuke")[0] == 0
    assert list(home.iterdir()) == []  # ~/.nuke was ours too, and is empty again


def test_an_edited_block_is_refused_and_nothing_changes(home, nuke_source, capsys):
    assert run_cli(capsys, "install", "nuke", "--from", str(nuke_source))[0] == 0
    menu = home / ".nuke" / "menu.py"
    edited = menu.read_text().replace("addMenu('CoolColor')", "addMenu('MyColor')")
    menu.write_text(edited)
    before = snapshot(home)
    for action in (["install", "nuke", "--from", str(nuke_source)], ["uninstall", "nuke"]):
        code, out, err = run_cli(capsys, *action)
        assert code == 1
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{menu}: the coolcolor block (lines 1-5) was edited" in err, err
        assert snapshot(home) == before
    code, out, _ = run_cli(capsys, "status", "nuke")
    assert code == 1 and "EDITED" in out
    # a removed end line is refused as well
    menu.write_text(edited.replace(BLOCK_END, "# the end"))
    code, _, err = run_cli(capsys, "uninstall", "nuke")
    assert code == 1 and "has no end line" in err


def test_resolve_install_puts_a_launcher_in_the_scripts_menu(home, resolve_source, capsys, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    (home / ".local" / "share").mkdir(parents=True)  # a Linux home without Resolve
    code, out, err = run_cli(capsys, "install", "resolve", "--from", str(resolve_source))
    assert code == 0, err
    fusion = home / ".local" / "share" / "DaVinciResolve" / "Fusion"
    launcher = fusion / "Scripts" / "Edit" / "CoolColor Colorize.py"
    assert launcher.is_file()
    assert sorted(p.name for p in (fusion / "Scripts" / "Edit").iterdir()) == ["CoolColor Colorize.py"]
    plugin = fusion / "CoolColor"
    # run the launcher the way Resolve does: as a script whose globals hold `resolve`
    result = run_isolated("import runpy, sys; runpy.run_path(sys.argv[1], init_globals={'resolve': 'R'})",
                          str(launcher))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["resolve"] == "R"
    assert seen["protocol"].startswith(str(plugin)) and seen["zmq"].startswith(str(plugin / "lib"))
    code, out, _ = run_cli(capsys, "status", "resolve")
    assert code == 0 and f"menu script: {launcher}" in out
    assert run_cli(capsys, "uninstall", "resolve")[0] == 0
    # Issue 27: every folder install created is gone (DaVinciResolve/ was left behind, empty); ours only.
    assert list((home / ".local" / "share").iterdir()) == [] and list(home.iterdir()) == [home / ".local"]
    # Where Resolve made its folder first, it stays, with what Resolve keeps in it.
    (fusion / "Config").mkdir(parents=True)
    assert run_cli(capsys, "install", "resolve", "--from", str(resolve_source))[0] == 0
    assert run_cli(capsys, "install", "resolve", "--from", str(resolve_source))[0] == 0  # a second install
    assert run_cli(capsys, "uninstall", "resolve")[0] == 0
    assert [p.name for p in fusion.iterdir()] == ["Config"]


def test_resolve_per_user_fusion_folder_on_each_os(tmp_path):
    home = tmp_path
    assert resolve_fusion_dir("linux", home, {}) == home / ".local/share/DaVinciResolve/Fusion"
    assert resolve_fusion_dir("darwin", home, {}) == (
        home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion")
    appdata = str(tmp_path / "AppData" / "Roaming")
    assert resolve_fusion_dir("win32", home, {"APPDATA": appdata}) == (
        Path(appdata) / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion")


def test_wheel_platform_tags_cover_each_os():
    from coolcolor.plugins_install import HostPython

    def tags(platform):
        return wheel_platform_tags(HostPython("py", (3, 9, 0), "cpython", "", platform, "", False))

    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64"} <= set(tags("linux-x86_64"))
    assert {"macosx_11_0_arm64", "macosx_10_9_universal2"} <= set(tags("macosx-11.0-arm64"))
    assert tags("win-amd64") == ["win_amd64"]


def fake_python(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_bad_input_gets_one_line_and_changes_nothing(home, nuke_source, tmp_path, capsys):
    nuke_dir = home / ".nuke"
    nuke_dir.mkdir()
    (nuke_dir / "init.py").write_bytes(USER_INIT)
    before = snapshot(nuke_dir)  # (pip, run for the plan9 case, may keep its own caches under $HOME)
    py38 = fake_python(tmp_path, "python3.8", "echo '{\"version\": [3, 8, 18], \"implementation\": \"cpython\", "
                       "\"soabi\": \"cpython-38-x86_64-linux-gnu\", \"platform\": \"linux-x86_64\"}'")
    plan9 = fake_python(tmp_path, "python-plan9", "echo '{\"version\": [3, 9, 1], \"implementation\": \"cpython\", "
                        "\"soabi\": \"cpython-39\", \"platform\": \"plan9-mips\"}'")
    broken = fake_python(tmp_path, "python-broken", "echo 'Fatal Python error: init_fs_encoding' >&2; exit 1")
    (tmp_path / "not-a-folder").write_text("x")
    empty_wheels = tmp_path / "wheels"
    empty_wheels.mkdir()
    cases = [
        (["install", "maya"], "unknown host 'maya': choose one of nuke, resolve"),
        (["status", "houdini"], "unknown host 'houdini'"),
        (["install", "nuke", "--host-python", str(tmp_path / "nope")], "no such program"),
        (["install", "nuke", "--host-python", broken], "does not run as a Python 3.9+ interpreter: Fatal Python error"),
        (["install", "nuke", "--host-python", py38], "is Python 3.8.18; the plugins need Python 3.9 or newer"),
        (["install", "nuke", "--host-python", plan9, "--wheel-dir", str(empty_wheels)],
         "no pyzmq wheel matches the host's Python 3.9.1 (cp39, plan9-mips)"),
        (["install", "nuke", "--target", str(tmp_path / "not-a-folder" / ".nuke")], "is not a folder"),
        (["uninstall", "nuke"], "is not installed"),
    ]
    if os.path.isdir("/proc/self"):
        cases.append((["install", "nuke", "--target", "/proc/self/coolcolor-nuke"], "is not writable"))
    for argv, words in cases:
        if argv[0] == "install" and "--from" not in argv and argv[1] == "nuke":
            argv = [*argv, "--from", str(nuke_source)]
        code, out, err = run_cli(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert words in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert snapshot(nuke_dir) == before, argv


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_host_folder_is_refused(home, nuke_source, capsys):
    nuke_dir = home / ".nuke"
    nuke_dir.mkdir()
    nuke_dir.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "install", "nuke", "--from", str(nuke_source))
        assert code == 1 and "is not writable" in err
        assert list(nuke_dir.iterdir()) == []
    finally:
        nuke_dir.chmod(0o700)


def test_a_host_python_with_this_abi_gets_this_pyzmq(home, nuke_source, capsys):
    code, out, err = run_cli(capsys, "install", "nuke", "--from", str(nuke_source), "--host-python", sys.executable)
    assert code == 0, err
    assert "copied from this Python" in out and "no --host-python given" not in out
    record = json.loads((home / ".nuke" / "coolcolor" / "coolcolor-install.json").read_text())
    assert record["host_python"]["given"] is True and record["host_python"]["executable"] == sys.executable
    code, out, _ = run_cli(capsys, "status", "nuke")
    assert code == 0 and ": yes (pyzmq" in out and "no --host-python was given" not in out


def test_the_real_plugin_folders_install_when_they_declare_a_manifest(home, capsys, monkeypatch):
    """The bundled plugins/<host>/ (written by the plugin issues) install and uninstall cleanly."""
    from coolcolor.plugins_install import MANIFEST_NAME, default_plugin_source

    monkeypatch.setattr(sys, "platform", "linux")
    ran = 0
    for host in ("nuke", "resolve"):
        src = default_plugin_source(host)
        if not (src / MANIFEST_NAME).is_file():
            continue
        ran += 1
        code, out, err = run_cli(capsys, "install", host)
        assert code == 0, err
        assert run_cli(capsys, "status", host)[0] == 0
        assert run_cli(capsys, "uninstall", host)[0] == 0
    if not ran:
        pytest.skip("no plugin folder declares a coolcolor_plugin.json yet")
