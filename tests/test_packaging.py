"""The wheel a user installs: its metadata (license, classifiers, links) and its files.

The wheel is built once, as `pip install .` would build it but with the committed build of the
JupyterLab extension (``SKIP_JUPYTER_BUILDER=1``: no node needed).
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                            str(ROOT)], env={**os.environ, "SKIP_JUPYTER_BUILDER": "1"},
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [path] = out.glob("kitteh_magic-*.whl")
    return zipfile.ZipFile(path)


def metadata(wheel: zipfile.ZipFile) -> Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_the_metadata_says_what_pypi_shows(wheel: zipfile.ZipFile) -> None:
    meta = metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    classifiers = set(meta.get_all("Classifier"))
    assert {
        "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt",
        "Framework :: Jupyter :: JupyterLab :: Extensions",
        "Framework :: Jupyter :: JupyterLab :: 4",
        "License :: OSI Approved :: MIT License",
        "Development Status :: 3 - Alpha",
        "Operating System :: POSIX",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    } <= classifiers
    urls = dict(line.split(", ", 1) for line in meta.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Issues", "Source"}
    assert all(url.startswith("https://") for url in urls.values())
    assert "jupyterlab" in meta["Keywords"].split(",")
    assert meta["Description-Content-Type"] == "text/markdown"


def test_the_long_description_has_no_relative_links(wheel: zipfile.ZipFile) -> None:
    description = metadata(wheel).get_payload()
    assert isinstance(description, str) and "kitteh-magic run" in description
    targets = (re.findall(r"\]\(([^)\s]+)", description)  # [text](target)
               + re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", description, re.MULTILINE)  # [ref]: x
               + re.findall(r"""(?:href|src)=["']([^"']+)""", description))  # HTML
    assert targets, "the README links somewhere (ARCHITECTURE.md, the benchmarks)"
    relative = [t for t in targets if not re.match(r"https?://|mailto:|#", t)]
    assert relative == []
    # The repository's README keeps its relative links (they work on GitHub and in a clone).
    assert "](ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_wheel_holds_the_license_the_extension_and_the_server_config(
        wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    text = wheel.read(license_file).decode()
    assert text.startswith("MIT License") and "2026 kitteh_magic developers" in text
    [package] = [n for n in names if n.endswith("share/jupyter/labextensions/kitteh_magic/"
                                                 "package.json")]
    assert json.loads(wheel.read(package))["name"] == "kitteh_magic"
    assert any(n.startswith(package.rsplit("/", 1)[0] + "/static/") for n in names)
    [config] = [n for n in names
                if n.endswith("etc/jupyter/jupyter_server_config.d/kitteh_magic.json")]
    enabled = json.loads(wheel.read(config))["ServerApp"]["jpserver_extensions"]
    assert enabled == {"kitteh_magic": True}
