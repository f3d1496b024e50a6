"""Image datasets: :class:`ImageDataset`, the MedMNIST parsers and :func:`load_image_npz`.

``.npz`` files are always read with ``allow_pickle=False``: a pickled array can run code when
it is loaded, so a file that needs pickle (an object array) is refused with a message saying so.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from multisteal.data._dataset import _check_labelled_rows, _subset_indices
from multisteal.errors import DataError, DatasetNotFoundError

__all__ = [
    "ImageDataset",
    "load_image_npz",
    "parse_breastmnist",
    "parse_pneumoniamnist",
]

# ---------------------------------------------------------------------- ImageDataset's checks

BAD_IMAGES_MSG = (
    "Dataset {name!r}: images must be a numpy array of real numbers with shape (n, H, W) or "
    "(n, H, W, C), H, W and C at least 1; got {description}."
)
NON_FINITE_IMAGES_MSG = (
    "Dataset {name!r}: images hold {count} NaN or infinite value(s) (first in image {index})."
)

# ------------------------------------------------------------------------------- MedMNIST

MEDMNIST_PARTS = ("train", "val", "test")
MEDMNIST_MISSING_ARRAYS_MSG = (
    "Dataset {dataset!r}: {file} lacks the arrays: {keys}. Arrays found: {found}."
)
MEDMNIST_BAD_ARRAY_MSG = (
    "Dataset {dataset!r}: array {key!r} of {file} has shape {shape} and dtype {dtype}; expected "
    "{expected}."
)
MEDMNIST_NOTE = (
    "MedMNIST has no demographic attributes (no patient age or sex in the file): `sensitive` "
    "has no columns, so group-fairness analyses need proxy groups."
)

# ----------------------------------------------------------------------- load_image_npz

NPZ_NOT_FOUND_MSG = "Image file {path} does not exist."
NOT_NPZ_MSG = (
    "{file} is not a NumPy .npz archive ({problem}); save the arrays with "
    "np.savez_compressed(path, x=images, y=labels)."
)
NEEDS_PICKLE_MSG = (
    "Array {key!r} of {file} is an object array, which needs pickle to load; .npz files are "
    "read with allow_pickle=False (loading a pickle can run code). Save it as a numeric or "
    "string array instead (e.g. np.asarray(values, dtype=str))."
)
MISSING_ARRAY_MSG = (
    "{file} has no array {key!r}; it needs 'x' (the images) and 'y' (the labels). Arrays found: "
    "{found}."
)
NPZ_IMAGE_SHAPE_MSG = (
    "Array 'x' of {file} must have shape (n, H, W) or (n, H, W, C) with H, W and C at least 1; "
    "got shape {shape}."
)
NPZ_CHANNELS_FIRST_MSG = (
    "Array 'x' of {file} has shape {shape}, which looks channels-first (n, C, H, W); images are "
    "taken channels-last, (n, H, W, C): save np.moveaxis(x, 1, -1) instead."
)
NPZ_IMAGE_DTYPE_MSG = "Array 'x' of {file} must hold real numbers; got dtype {dtype}."
NPZ_NO_IMAGES_MSG = "{file} holds no images (array 'x' has 0 rows)."
NPZ_NON_FINITE_MSG = (
    "Array 'x' of {file} has {count} NaN or infinite value(s) (first in image {index}); replace "
    "or drop those images."
)
NPZ_LABELS_SHAPE_MSG = (
    "Array 'y' of {file} must have shape (n,) (or (n, 1)), one label per image; got shape {shape}."
)
NPZ_LABELS_DTYPE_MSG = (
    "Array 'y' of {file} must hold integers or strings; got dtype {dtype}. Convert it first "
    "(e.g. y.astype(int))."
)
NPZ_GROUPS_MSG = (
    "Array 'groups' of {file} must have shape (n,), one group label (string or integer) per "
    "image; got shape {shape} and dtype {dtype}."
)
NPZ_LENGTH_MSG = "Arrays of {file} disagree: 'x' has {n_x} images but {key!r} has {n_other} rows."
NPZ_SINGLE_CLASS_MSG = (
    "Array 'y' of {file} has a single class ({value}); at least two classes are needed."
)
NPZ_POSITIVE_LABEL_MSG = "positive_label {value!r} is not a label of {file}. Labels: {values}."
NPZ_BAD_POSITIVE_LABEL_MSG = (
    "Array 'positive_label' of {file} must hold a single string or integer; got shape {shape} "
    "and dtype {dtype}."
)
GROUP_COLUMN = "group"
NO_GROUPS_NOTE = "The file has no 'groups' array, so `sensitive` has no columns."

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """An image classification dataset.

    Attributes:
        name: short dataset name (e.g. ``"breastmnist"``).
        images: array of shape ``(n, H, W)`` (grayscale) or ``(n, H, W, C)``, any real dtype
            (typically ``uint8`` in 0..255), finite values.
        y: ``int64`` array of shape ``(n,)`` with class indices ``0 .. n_classes - 1``.
        sensitive: one column per sensitive attribute, string group labels; it may have no
            columns (MedMNIST has no demographic data).
        class_names: readable name of each class index.
        source: where the data was read from (file paths).
        positive_class: index of the favourable outcome used by fairness metrics.
        parts: the official split (sorted ``int64`` row positions keyed among ``"train"``,
            ``"val"``, ``"test"``), or ``None``.
        notes: remarks on the data (e.g. that it has no demographic attributes).
    """

    name: str
    images: np.ndarray
    y: np.ndarray
    sensitive: pd.DataFrame
    class_names: tuple[str, ...]
    source: str
    positive_class: int
    parts: Mapping[str, np.ndarray] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        images = self.images
        if (
            not isinstance(images, np.ndarray)
            or images.ndim not in (3, 4)
            or images.dtype.kind not in "biuf"
            or 0 in images.shape[1:]
        ):
            description = (
                f"shape {images.shape} and dtype {images.dtype}"
                if isinstance(images, np.ndarray)
                else type(images).__name__
            )
            raise DataError(BAD_IMAGES_MSG.format(name=self.name, description=description))
        if images.dtype.kind == "f":
            bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1)
            if bad.any():
                raise DataError(
                    NON_FINITE_IMAGES_MSG.format(
                        name=self.name,
                        count=int((~np.isfinite(images)).sum()),
                        index=int(np.argmax(bad)),
                    )
                )
        _check_labelled_rows(
            self.name,
            inputs="images",
            n=len(images),
            y=self.y,
            sensitive=self.sensitive,
            class_names=self.class_names,
            positive_class=self.positive_class,
            parts=self.parts,
        )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def modality(self) -> Literal["image"]:
        """``"image"``."""
        return "image"

    @property
    def inputs(self) -> np.ndarray:
        """The model inputs: :attr:`images`."""
        return self.images

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image: ``(H, W)`` or ``(H, W, C)``."""
        return tuple(int(d) for d in self.images.shape[1:])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageDataset:
        """Return the images at ``indices`` (positions); ``parts`` is ``None`` in the result."""
        idx = _subset_indices(indices, len(self))
        return ImageDataset(
            name=self.name,
            images=self.images[idx],
            y=self.y[idx],
            sensitive=self.sensitive.iloc[idx].reset_index(drop=True),
            class_names=self.class_names,
            source=self.source,
            positive_class=self.positive_class,
            parts=None,
            notes=self.notes,
        )


def _open_binary(path: Path) -> IO[bytes]:
    """The bytes of ``path`` (decompressed when it ends in ``.gz``) as a seekable stream."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as stream:
            return io.BytesIO(stream.read())
    return io.BytesIO(path.read_bytes())


def _load_npz(stream: IO[bytes], file: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without pickle."""
    head = stream.read(4)
    stream.seek(0)
    if head not in _ZIP_MAGIC:
        problem = "it is a single .npy array" if head[:4] == b"\x93NUM" else "not a zip archive"
        raise DataError(NOT_NPZ_MSG.format(file=file, problem=problem))
    try:
        with np.load(stream, allow_pickle=False) as archive:
            return {key: _npz_array(archive, key, file) for key in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(NOT_NPZ_MSG.format(file=file, problem=exc)) from None


def _npz_array(archive: Mapping[str, np.ndarray], key: str, file: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(NEEDS_PICKLE_MSG.format(key=key, file=file)) from None
        raise DataError(NOT_NPZ_MSG.format(file=file, problem=exc)) from None


def _parse_medmnist(
    dataset: str,
    file: str,
    paths: Mapping[str, Path],
    source: str,
    *,
    class_names: tuple[str, ...],
    positive_class: int,
) -> ImageDataset:
    path = paths[file]
    arrays = _load_npz(_open_binary(path), path.name)
    wanted = [f"{part}_{kind}" for part in MEDMNIST_PARTS for kind in ("images", "labels")]
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise DataError(
            MEDMNIST_MISSING_ARRAYS_MSG.format(
                dataset=dataset,
                file=path.name,
                keys=", ".join(missing),
                found=", ".join(sorted(arrays)) or "none",
            )
        )
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    parts: dict[str, np.ndarray] = {}
    start = 0
    for part in MEDMNIST_PARTS:
        x = arrays[f"{part}_images"]
        y = arrays[f"{part}_labels"]
        if x.ndim not in (3, 4) or x.dtype != np.uint8:
            raise DataError(
                MEDMNIST_BAD_ARRAY_MSG.format(
                    dataset=dataset,
                    key=f"{part}_images",
                    file=path.name,
                    shape=x.shape,
                    dtype=x.dtype,
                    expected="(n, H, W) or (n, H, W, C) uint8",
                )
            )
        if y.shape != (len(x), 1) or y.dtype.kind not in "iu":
            raise DataError(
                MEDMNIST_BAD_ARRAY_MSG.format(
                    dataset=dataset,
                    key=f"{part}_labels",
                    file=path.name,
                    shape=y.shape,
                    dtype=y.dtype,
                    expected=f"({len(x)}, 1) integers",
                )
            )
        images.append(x)
        labels.append(y.reshape(-1).astype(np.int64))
        parts[part] = np.arange(start, start + len(x), dtype=np.int64)
        start += len(x)
    return ImageDataset(
        name=dataset,
        images=np.concatenate(images),
        y=np.concatenate(labels),
        sensitive=pd.DataFrame(index=pd.RangeIndex(start)),
        class_names=class_names,
        source=source,
        positive_class=positive_class,
        parts=parts,
        notes=(MEDMNIST_NOTE,),
    )


def parse_breastmnist(paths: Mapping[str, Path], source: str) -> ImageDataset:
    """BreastMNIST (28×28 breast ultrasound): 0 malignant, 1 normal or benign (favourable)."""
    return _parse_medmnist(
        "breastmnist",
        "breastmnist.npz",
        paths,
        source,
        class_names=("malignant", "normal or benign"),
        positive_class=1,
    )


def parse_pneumoniamnist(paths: Mapping[str, Path], source: str) -> ImageDataset:
    """PneumoniaMNIST (28×28 paediatric chest X-rays): 0 normal (favourable), 1 pneumonia."""
    return _parse_medmnist(
        "pneumoniamnist",
        "pneumoniamnist.npz",
        paths,
        source,
        class_names=("normal", "pneumonia"),
        positive_class=0,
    )


# --------------------------------------------------------------------- a user's own .npz


def _as_label_strings(values: np.ndarray) -> np.ndarray:
    """String or integer labels as a 1-D array of ``str`` (bytes decoded as UTF-8)."""
    if values.dtype.kind == "S":
        return np.array([v.decode("utf-8", "replace") for v in values.tolist()], dtype=object)
    return values.astype(str).astype(object)


def _positive_from_file(arrays: Mapping[str, np.ndarray], file: str) -> object:
    value = arrays["positive_label"]
    if value.size != 1 or value.dtype.kind not in "iuUS":
        raise DataError(
            NPZ_BAD_POSITIVE_LABEL_MSG.format(file=file, shape=value.shape, dtype=value.dtype)
        )
    item = value.reshape(-1)[0].item()
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else item


def load_image_npz(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    positive_label: object = None,
) -> ImageDataset:
    """Load a user's ``.npz`` file of labelled images as an :class:`ImageDataset`.

    Arrays of the file (saved e.g. with ``np.savez_compressed(path, x=..., y=...)``):

    - ``x``: images, shape ``(n, H, W)`` or ``(n, H, W, C)``, any real dtype, finite values;
    - ``y``: labels, shape ``(n,)`` (or ``(n, 1)``), integers or strings, any number of
      classes (at least two). The class names are the distinct values in sorted order, as
      strings, and ``y`` becomes their indices;
    - ``groups`` (optional): shape ``(n,)``, one group label per image; it becomes the
      sensitive column ``"group"`` (without it, ``sensitive`` has no columns);
    - ``positive_label`` (optional): the favourable label (one string or integer).

    Other arrays are ignored. The file is read with ``allow_pickle=False``.

    Args:
        path: the ``.npz`` file (``.npz.gz`` is read too).
        name: dataset name; defaults to the file name without suffix.
        positive_label: the favourable label; overrides the file's ``positive_label``. Without
            either, ``positive_class`` is the last class in sorted order.

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: not an ``.npz`` archive, an array that needs pickle, a missing ``x`` or
            ``y``, a wrong shape or dtype, arrays of different lengths, NaN or infinite pixels,
            fewer than two classes, or an unknown ``positive_label``.
    """
    file_path = Path(path)
    file = file_path.name
    if not file_path.is_file():
        raise DatasetNotFoundError(NPZ_NOT_FOUND_MSG.format(path=file_path))
    arrays = _load_npz(_open_binary(file_path), file)
    found = ", ".join(sorted(arrays)) or "none"
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(MISSING_ARRAY_MSG.format(file=file, key=key, found=found))
    x, y = arrays["x"], arrays["y"]
    if x.ndim not in (3, 4) or 0 in x.shape[1:]:
        raise DataError(NPZ_IMAGE_SHAPE_MSG.format(file=file, shape=x.shape))
    if x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[3] > 4:
        raise DataError(NPZ_CHANNELS_FIRST_MSG.format(file=file, shape=x.shape))
    if x.dtype.kind not in "biuf":
        raise DataError(NPZ_IMAGE_DTYPE_MSG.format(file=file, dtype=x.dtype))
    if len(x) == 0:
        raise DataError(NPZ_NO_IMAGES_MSG.format(file=file))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(NPZ_LABELS_SHAPE_MSG.format(file=file, shape=y.shape))
    if y.dtype.kind not in "iuUS":
        raise DataError(NPZ_LABELS_DTYPE_MSG.format(file=file, dtype=y.dtype))
    if len(y) != len(x):
        raise DataError(NPZ_LENGTH_MSG.format(file=file, n_x=len(x), key="y", n_other=len(y)))
    groups = arrays.get("groups")
    if groups is not None:
        if groups.ndim != 1 or groups.dtype.kind not in "biuUS":
            raise DataError(
                NPZ_GROUPS_MSG.format(file=file, shape=groups.shape, dtype=groups.dtype)
            )
        if len(groups) != len(x):
            raise DataError(
                NPZ_LENGTH_MSG.format(file=file, n_x=len(x), key="groups", n_other=len(groups))
            )
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            first = int(np.argmax(~finite.reshape(len(x), -1).all(axis=1)))
            raise DataError(
                NPZ_NON_FINITE_MSG.format(file=file, count=int((~finite).sum()), index=first)
            )

    if y.dtype.kind == "S":
        y = np.array([v.decode("utf-8", "replace") for v in y.tolist()])
    values, codes = np.unique(y, return_inverse=True)
    names = tuple(str(v) for v in values.tolist())
    if len(names) < 2:
        raise DataError(NPZ_SINGLE_CLASS_MSG.format(file=file, value=repr(names[0])))
    if positive_label is None and "positive_label" in arrays:
        positive_label = _positive_from_file(arrays, file)
    positive_class = len(names) - 1
    if positive_label is not None:
        if str(positive_label) not in names:
            raise DataError(
                NPZ_POSITIVE_LABEL_MSG.format(
                    value=positive_label, file=file, values=", ".join(names)
                )
            )
        positive_class = names.index(str(positive_label))
    sensitive = (
        pd.DataFrame({GROUP_COLUMN: pd.Series(_as_label_strings(groups), dtype=object)})
        if groups is not None
        else pd.DataFrame(index=pd.RangeIndex(len(x)))
    )
    return ImageDataset(
        name=name if name is not None else file.split(".")[0],
        images=x,
        y=np.asarray(codes, dtype=np.int64).reshape(-1),
        sensitive=sensitive,
        class_names=names,
        source=str(file_path),
        positive_class=positive_class,
        notes=() if groups is not None else (NO_GROUPS_NOTE,),
    )
