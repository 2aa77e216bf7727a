"""One data location: ``FEEDBACK_DATA_DIR``, else the location files ``feedback up`` writes, else ``./data``.

Guarantees: every command run from the folder where ``feedback up`` ran (or a folder below it), or by
the same user elsewhere, finds the same data directory; a location file that is there but unreadable
is a :class:`~pipeline.errors.ConfigError`, never silently another folder.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from pipeline.errors import ConfigError

#: Written by ``feedback up`` in the folder it runs in; found from that folder and every folder below it.
PROJECT_LOCATION_FILE = ".feedback.toml"


def user_location_file() -> Path:
    """``$XDG_CONFIG_HOME/feedback/location.toml`` (default ``~/.config``): the last ``feedback up``'s data."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "feedback" / "location.toml"


def _read_location(path: Path) -> Path | None:
    """The data_dir a location file names; None when there is no file; a file that is there but
    unreadable or without ``data_dir`` is a ConfigError (never silently another folder)."""
    if not path.is_file():
        return None
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("data_dir")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the data location ({exc}); fix or delete it, "
                          "or set FEEDBACK_DATA_DIR") from None
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{path}: expected data_dir = "/path/to/data"; fix or delete it, or set FEEDBACK_DATA_DIR')
    return Path(value)


def find_data_dir(use_user_file: bool = True) -> tuple[Path, str]:
    """The data directory when FEEDBACK_DATA_DIR is unset, and where that answer came from: the nearest
    project file (this folder or a parent), then the user file (only when its folder exists), then ./data."""
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / PROJECT_LOCATION_FILE
        if candidate.is_file() and (found := _read_location(candidate)) is not None:
            return found, str(candidate)
    if use_user_file:
        candidate = user_location_file()
        found = _read_location(candidate)
        if found is not None and found.is_dir():
            return found, str(candidate)
    return (cwd / "data").resolve(), "the default ./data"


def write_data_location(data_dir: Path) -> list[Path]:
    """Record ``data_dir`` in the project file (the current folder) and the user file; the files written."""
    location = json.dumps(str(data_dir.resolve()))  # a JSON string is a valid TOML basic string
    body = f"# written by `feedback up`: where this pipeline keeps its data\ndata_dir = {location}\n"
    written = []
    for path in (Path.cwd() / PROJECT_LOCATION_FILE, user_location_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != body:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(body, encoding="utf-8")
            tmp.replace(path)
        written.append(path)
    return written
