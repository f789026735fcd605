"""The Train page's switch: off unless a deployer turns it on, and confined to a data root.

``SER_ENABLE_TRAINING=1``, or a data root named with ``SER_DATA_DIR`` (environment variables
or Streamlit secrets), turns training on; with a data root the page scans only folders under
it, so a visitor cannot list the server's files. ``SER_DISABLE_TRAINING=1`` turns it off
whatever else says.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ser.audio import printable
from ser.errors import DatasetError
from ui.texts import OFF, OFF_HOW

ENABLE_SETTING = "SER_ENABLE_TRAINING"
DISABLE_SETTING = "SER_DISABLE_TRAINING"
DATA_ROOT_SETTING = "SER_DATA_DIR"
# The only values a switch takes; anything else keeps training off and says so (a typo in a
# public deployment's settings must not open the server's disk).
SWITCH_VALUES = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
    "": False,
}


@dataclass(frozen=True)
class Access:
    """Whether the Train page may run, why not, and the folder it is confined to (if any)."""

    enabled: bool
    message: str = ""
    data_root: Path | None = None


def setting(name: str) -> str:
    """An environment variable, else the Streamlit secret of that name, else ""."""
    if name in os.environ:
        return os.environ[name].strip()
    try:
        return str(st.secrets.get(name, "")).strip()
    except Exception:  # no secrets file, or an unreadable one: the environment decides
        return ""


def _switch(name: str) -> bool | str:
    """The switch's value, or the message that says it is not understood."""
    value = setting(name)
    if value.lower() in SWITCH_VALUES:
        return SWITCH_VALUES[value.lower()]
    accepted = ", ".join(v for v in SWITCH_VALUES if v)
    return f"{name}={value!r} is not understood, so training stays off. Use one of: {accepted}."


def training_access() -> Access:
    """Off unless turned on; a data root, when named, turns it on and confines it."""
    disable, enable = _switch(DISABLE_SETTING), _switch(ENABLE_SETTING)
    for value in (disable, enable):
        if isinstance(value, str):
            return Access(False, f"{OFF} {value}")
    if disable:
        return Access(False, f"{OFF} {OFF_HOW}")
    root = setting(DATA_ROOT_SETTING)
    if root:
        return Access(True, data_root=Path(root).expanduser().resolve())
    return Access(True) if enable else Access(False, f"{OFF} {OFF_HOW}")


def confine(folders: Sequence[str], root: Path | None) -> tuple[str, ...]:
    """The folders to scan: with a data root, only folders under it (a relative one is taken
    from it). Raises ``DatasetError`` for one outside it before looking at it, so the answer
    says nothing about what exists outside."""
    if root is None:
        return tuple(folders)
    inside = []
    for folder in folders:
        path = Path(folder).expanduser()
        resolved = (path if path.is_absolute() else root / path).resolve()
        if not resolved.is_relative_to(root):
            raise DatasetError(
                f"'{printable(folder)}' is outside the data folder this server trains from "
                f"({root}). Type a folder under it."
            )
        inside.append(str(resolved))
    return tuple(inside)
