"""Starting the prediction service: the default store beside the target, and the settings every
uvicorn worker builds its app from (:func:`multisteal.service.app.app_from_env`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multisteal.errors import InvalidInputError

__all__ = ["default_store_url", "settings_json"]

NO_TARGET = (
    "{path} is not a saved target (no meta.json); serve a run's target folder, e.g. RUN_DIR/target."
)


def default_store_url(target_dir: str | Path) -> str:
    """``sqlite:///…/service.db`` beside the target folder (the embedded default)."""
    folder = Path(target_dir).resolve()
    if not (folder / "meta.json").is_file():
        raise InvalidInputError(NO_TARGET.format(path=folder))
    return f"sqlite:///{folder.parent / 'service.db'}"


def settings_json(target_dir: str | Path, **settings: Any) -> str:
    """The JSON of :data:`multisteal.service.app.CONFIG_ENV`: ``create_app``'s arguments."""
    folder = Path(target_dir).resolve()
    if not (folder / "meta.json").is_file():
        raise InvalidInputError(NO_TARGET.format(path=folder))
    return json.dumps({"target_dir": str(folder), **settings})
