"""Datasets: registry, loaders, preprocessing and seeded splits.

Typical use::

    from multisteal.data import TabularPreprocessor, load_dataset, split_dataset

    ds = load_dataset("adult")
    splits = split_dataset(ds.y, sizes=(0.5, 0.3, 0.2), seed=0)
    train = ds.subset(splits.target_train)
    pre = TabularPreprocessor().fit(train.features)  # fit on target-train rows only
    X_train = pre.transform(train.features)

Every loaded dataset satisfies the :class:`Dataset` protocol: a :class:`TabularDataset`, an
:class:`ImageDataset` (``breastmnist``, ``pneumoniamnist``, :func:`load_image_npz`) or a
:class:`TextDataset` (``sst2``, ``rotten_tomatoes``, ``eec``, :func:`load_text_csv`), with the
same labels, sensitive attributes and official split (``parts``); ``inputs`` holds the model
inputs of each kind.

Datasets are read from local copies first (``data_dir``, ``$MULTISTEAL_DATA``, the compact
copies bundled with the package) and downloaded only when none is found; every file's SHA-256
is checked.
"""

from __future__ import annotations

from multisteal.data._csv import load_csv
from multisteal.data._dataset import MODALITIES, PART_NAMES, Dataset, Modality, TabularDataset
from multisteal.data._files import CACHE_ENV, DATA_ENV, FileSpec
from multisteal.data._images import ImageDataset, load_image_npz
from multisteal.data._text import TextDataset, load_text_csv
from multisteal.data.inputs import (
    ColumnSpec,
    ImageSpec,
    InputSpec,
    TabularSpec,
    TextSpec,
    input_spec_of,
    spec_from_dict,
)
from multisteal.data.preprocessing import TabularPreprocessor
from multisteal.data.registry import DATASETS, DatasetSpec, available_datasets, load_dataset
from multisteal.data.splits import SPLIT_NAMES, Splits, split_dataset

__all__ = [
    "CACHE_ENV",
    "DATASETS",
    "DATA_ENV",
    "MODALITIES",
    "PART_NAMES",
    "SPLIT_NAMES",
    "ColumnSpec",
    "Dataset",
    "DatasetSpec",
    "FileSpec",
    "ImageDataset",
    "ImageSpec",
    "InputSpec",
    "Modality",
    "Splits",
    "TabularDataset",
    "TabularPreprocessor",
    "TabularSpec",
    "TextDataset",
    "TextSpec",
    "available_datasets",
    "input_spec_of",
    "load_csv",
    "load_dataset",
    "load_image_npz",
    "load_text_csv",
    "spec_from_dict",
    "split_dataset",
]
