"""Datasets: registry, loaders, preprocessing and seeded splits.

Typical use::

    from multisteal.data import TabularPreprocessor, load_dataset, split_dataset

    ds = load_dataset("adult")
    splits = split_dataset(ds.y, sizes=(0.5, 0.3, 0.2), seed=0)
    train = ds.subset(splits.target_train)
    pre = TabularPreprocessor().fit(train.features)  # fit on target-train rows only
    X_train = pre.transform(train.features)

Datasets are read from local copies first (``data_dir``, ``$MULTISTEAL_DATA``, the compact
copies bundled with the package) and downloaded only when none is found; every file's SHA-256
is checked.
"""

from __future__ import annotations

from multisteal.data._csv import load_csv
from multisteal.data._dataset import TabularDataset
from multisteal.data._files import CACHE_ENV, DATA_ENV, FileSpec
from multisteal.data.preprocessing import TabularPreprocessor
from multisteal.data.registry import DATASETS, DatasetSpec, available_datasets, load_dataset
from multisteal.data.splits import SPLIT_NAMES, Splits, split_dataset

__all__ = [
    "CACHE_ENV",
    "DATASETS",
    "DATA_ENV",
    "SPLIT_NAMES",
    "DatasetSpec",
    "FileSpec",
    "Splits",
    "TabularDataset",
    "TabularPreprocessor",
    "available_datasets",
    "load_csv",
    "load_dataset",
    "split_dataset",
]
