"""Finds the `retune` binary the wheel installed beside this package.

The wheel puts the Rust binary in the environment's scripts directory (bin/ in a venv),
as ruff and uv do. A user install (`pip install --user`) puts it in the user scheme's
scripts directory instead; `cargo install` puts it on the PATH. RETUNE_BINARY overrides
all of these, for a development build (`RETUNE_BINARY=target/release/retune`).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

ENV_VAR = "RETUNE_BINARY"


def _exe_name() -> str:
    return "retune" + (sysconfig.get_config_var("EXE") or "")


def _user_scripts_dir() -> str | None:
    if sys.version_info >= (3, 10):
        scheme = sysconfig.get_preferred_scheme("user")
    elif os.name == "nt":
        scheme = "nt_user"
    elif sys.platform == "darwin" and getattr(sys, "_framework", None):
        scheme = "osx_framework_user"
    else:
        scheme = "posix_user"
    try:
        return sysconfig.get_path("scripts", scheme=scheme)
    except KeyError:  # a Python built without that scheme
        return None


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary() -> str:
    """Return the path of the `retune` binary, or raise FileNotFoundError saying where
    it looked and how to install it."""
    override = os.environ.get(ENV_VAR)
    if override:
        if _is_executable(override):
            return override
        raise FileNotFoundError(
            f"{ENV_VAR}={override} is not an executable file; unset it to use the "
            "binary installed with the package"
        )
    exe = _exe_name()
    looked = []
    for directory in (sysconfig.get_path("scripts"), _user_scripts_dir()):
        if directory:
            candidate = os.path.join(directory, exe)
            looked.append(candidate)
            if _is_executable(candidate):
                return candidate
    on_path = shutil.which(exe)
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"the retune binary was not found (looked at {', '.join(looked)} and the PATH); "
        "install it with `pip install retune` (the wheel ships it) or "
        f"`cargo install --path .`, or point {ENV_VAR} at it"
    )
