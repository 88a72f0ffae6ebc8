"""Files kitteh_magic creates outside a store are private whatever the umask (DESIGN §4.9)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Run in a child: the umask is process-wide, and the product's own function creates the key.
CREATE_KEY = """
import json, os, sys
from kitteh_magic import locate
from kitteh_magic.store.signing import load_or_create_key
os.umask(int(sys.argv[1], 8))
path = locate.key_file()
print(json.dumps({"path": str(path), "bytes": len(load_or_create_key(path))}))
"""


def create_key(umask: int, env: dict[str, str]) -> Path:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("KITTEH_MAGIC_KEY_FILE", "XDG_CONFIG_HOME", "HOME")}
    out = subprocess.run([sys.executable, "-c", CREATE_KEY, oct(umask)], env={**clean, **env},
                         check=True, capture_output=True, text=True)
    reply = json.loads(out.stdout)
    assert reply["bytes"] == 32
    return Path(reply["path"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277], ids=oct)
def test_key_directories_are_private_under_any_umask(tmp_path: Path, umask: int) -> None:
    """Every directory created on the way to ``$XDG_CONFIG_HOME/kitteh_magic/key`` is 0700 and
    the key 0600; a umask that would take the owner's own rights away does not either."""
    config = tmp_path / "home" / "deep" / "config"

    key = create_key(umask, {"XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path / "home")})

    assert key == config / "kitteh_magic" / "key"
    created = [tmp_path / "home", tmp_path / "home" / "deep", config, config / "kitteh_magic"]
    assert {str(d): oct(mode(d)) for d in created} == {str(d): "0o700" for d in created}
    assert oct(mode(key)) == "0o600"


def test_key_file_from_the_environment_gets_private_parents(tmp_path: Path) -> None:
    key = create_key(0, {"KITTEH_MAGIC_KEY_FILE": str(tmp_path / "secrets" / "kitteh" / "key")})

    assert [oct(mode(d)) for d in (tmp_path / "secrets", key.parent)] == ["0o700", "0o700"]
    assert oct(mode(key)) == "0o600"


def test_existing_directories_are_left_as_they_are(tmp_path: Path) -> None:
    """A directory the user already had is theirs: only what kitteh_magic creates is tightened."""
    config = tmp_path / "config"
    config.mkdir()
    config.chmod(0o755)

    key = create_key(0, {"XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path)})

    assert oct(mode(config)) == "0o755"
    assert oct(mode(key.parent)) == "0o700" and oct(mode(key)) == "0o600"


OPEN_STORE = """
import os, sys
os.umask(0)
from kitteh_magic.store import Store
Store(sys.argv[1]).put_json("km1/probe", {"ok": True})
"""


def test_store_directories_are_private_under_umask_000(tmp_path: Path) -> None:
    """The store's own directories and every ancestor it creates are 0700 (DESIGN §4.9)."""
    store = tmp_path / "a" / "b" / ".kitteh"
    subprocess.run([sys.executable, "-c", OPEN_STORE, str(store)], check=True,
                   env={**os.environ, "KITTEH_MAGIC_KEY_FILE": str(tmp_path / "key")})
    created = [tmp_path / "a", tmp_path / "a" / "b", store, store / "index", store / "blobs",
               store / "tmp"]
    assert {str(d): oct(mode(d)) for d in created} == {str(d): "0o700" for d in created}
