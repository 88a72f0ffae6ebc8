"""The committed lab extension build matches its sources, and the package points Jupyter at it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import kitteh_magic

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "kitteh_magic" / "labextension"


def hash_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labextension_hash",
                                                  ROOT / "scripts" / "labextension_hash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_build_is_not_stale() -> None:
    stamp = (BUILD / "source-hash.txt").read_text().strip()

    assert hash_module().source_hash(ROOT) == stamp, (
        "labextension/ changed since kitteh_magic/labextension was built: "
        "run scripts/build-labextension.sh and commit its output")


def test_build_is_complete() -> None:
    meta = json.loads((BUILD / "package.json").read_text())
    load = meta["jupyterlab"]["_build"]["load"]

    assert meta["name"] == "kitteh_magic"
    assert (BUILD / load).is_file()
    assert (BUILD / "static" / "style.js").is_file()


def test_package_points_jupyter_at_the_extensions() -> None:
    [lab] = kitteh_magic._jupyter_labextension_paths()
    [server] = kitteh_magic._jupyter_server_extension_points()

    assert lab["dest"] == "kitteh_magic" and Path(lab["src"]) == BUILD
    assert server == {"module": "kitteh_magic.server"}
    config = json.loads((ROOT / "jupyter-config/server-config/kitteh_magic.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"] == {"kitteh_magic": True}


def test_importing_the_package_does_not_need_jupyter_server() -> None:
    import subprocess
    import sys

    code = ("import sys, kitteh_magic, kitteh_magic.server, kitteh_magic.server.notebooks; "
            "sys.exit('jupyter_server' in sys.modules or 'tornado' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_jupyter_lists_both_extensions_enabled_and_ok() -> None:
    """What a user checks after `pip install`: the installed environment, not the source tree."""
    import os
    import subprocess
    import sys

    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**os.environ, "NO_COLOR": "1", "JUPYTER_PLATFORM_DIRS": "1"}
    lab = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True,
                         env=env, timeout=120)
    server = subprocess.run([str(jupyter), "server", "extension", "list"], capture_output=True,
                            text=True, env=env, timeout=120)
    strip = str.maketrans("", "", "\x1b")
    lab_line = next(line for line in (lab.stdout + lab.stderr).translate(strip).splitlines()
                    if "kitteh_magic" in line)
    assert "enabled" in lab_line and "OK" in lab_line
    server_text = (server.stdout + server.stderr).translate(strip)
    assert "kitteh_magic" in server_text and "enabled" in server_text
    assert "kitteh_magic 0.1.0" in server_text and "OK" in server_text
