"""The dataset registry and :func:`load_dataset`.

Each entry of :data:`DATASETS` describes where a dataset's files come from (file names,
SHA-256 digests, canonical URLs, bundled copies), its license and citation, and the parser
that turns the verified files into a dataset object. Adding a dataset (images, text, …) means
adding an entry; callers of :func:`load_dataset` do not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from multisteal.data._dataset import TabularDataset
from multisteal.data._files import FileSpec, resolve_file
from multisteal.data._tabular import parse_adult, parse_compas, parse_german_credit
from multisteal.errors import DataError

__all__ = ["DATASETS", "DatasetSpec", "FileSpec", "available_datasets", "load_dataset"]

UNKNOWN_DATASET_MSG = "Unknown dataset {name!r}. Available datasets: {available}."

Parser = Callable[[Mapping[str, Path], str], TabularDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """Registry entry of one dataset.

    Attributes:
        name: registry key, also ``TabularDataset.name``.
        description: one line on what the data is.
        files: the upstream files the parser needs, with digests and URLs.
        parser: ``(paths by file name, source) -> dataset``.
        homepage: the dataset's landing page.
        license: license of the data.
        citation: how to cite it.
    """

    name: str
    description: str
    files: tuple[FileSpec, ...]
    parser: Parser
    homepage: str
    license: str
    citation: str


_UCI_ADULT = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_COMPAS_URL = (
    "https://raw.githubusercontent.com/propublica/compas-analysis/"
    "bafff5da3f2e45eca6c2d5055faad269defd135a/compas-scores-two-years.csv"
)
_GERMAN_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/german.data"

DATASETS: dict[str, DatasetSpec] = {
    "adult": DatasetSpec(
        name="adult",
        description="UCI Adult census income (1994): income >50K, 48,842 people.",
        files=(
            FileSpec(
                name="adult.data",
                sha256="5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
                url=_UCI_ADULT + "adult.data",
                bundled="adult.data.gz",
            ),
            FileSpec(
                name="adult.test",
                sha256="a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
                url=_UCI_ADULT + "adult.test",
                bundled="adult.test.gz",
            ),
        ),
        parser=parse_adult,
        homepage="https://archive.ics.uci.edu/dataset/2/adult",
        license="CC BY 4.0",
        citation=(
            "Becker, B. & Kohavi, R. (1996). Adult [Dataset]. UCI Machine Learning Repository. "
            "https://doi.org/10.24432/C5XW20"
        ),
    ),
    "compas": DatasetSpec(
        name="compas",
        description="ProPublica COMPAS, Broward County FL: two-year recidivism, 7,214 people.",
        files=(
            FileSpec(
                name="compas-scores-two-years.csv",
                sha256="c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
                url=_COMPAS_URL,
                bundled="compas-scores-two-years.csv.gz",
            ),
        ),
        parser=parse_compas,
        homepage="https://github.com/propublica/compas-analysis",
        license=(
            "No license file (ProPublica's terms apply); redistributed for research use, "
            "as AIF360 does"
        ),
        citation=(
            "Angwin, J., Larson, J., Mattu, S. & Kirchner, L. (2016). Machine Bias. ProPublica. "
            "https://github.com/propublica/compas-analysis"
        ),
    ),
    "german_credit": DatasetSpec(
        name="german_credit",
        description="Statlog German credit (Hofmann, 1994): good/bad credit risk, 1,000 people.",
        files=(
            FileSpec(
                name="german.data",
                sha256="b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
                url=_GERMAN_URL,
                bundled="german.data.gz",
            ),
        ),
        parser=parse_german_credit,
        homepage="https://archive.ics.uci.edu/dataset/144/statlog+german+credit+data",
        license="CC BY 4.0",
        citation=(
            "Hofmann, H. (1994). Statlog (German Credit Data) [Dataset]. UCI Machine Learning "
            "Repository. https://doi.org/10.24432/C5NC77"
        ),
    ),
}


def available_datasets() -> tuple[str, ...]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return tuple(sorted(DATASETS))


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> TabularDataset:
    """Load a registered dataset by name.

    Each file is taken from the first of: ``data_dir``; the ``MULTISTEAL_DATA`` directory
    (as ``<dir>/<file>`` or ``<dir>/<name>/<file>``, plain or ``.gz``); the copy bundled with
    the package; the download cache (``MULTISTEAL_CACHE`` or ``~/.cache/multisteal``); a
    download from the canonical URL when ``download`` is true. Every file's SHA-256 is checked.

    Raises:
        DataError: unknown ``name``, or a file fails its checksum or cannot be parsed.
        DatasetNotFoundError: a file is nowhere to be found and cannot be downloaded.

    >>> ds = load_dataset("german_credit")
    >>> len(ds), ds.class_names, ds.positive_class
    (1000, ('bad', 'good'), 1)
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DataError(
            UNKNOWN_DATASET_MSG.format(name=name, available=", ".join(available_datasets()))
        )
    paths = {
        f.name: resolve_file(f, spec.name, data_dir=data_dir, download=download) for f in spec.files
    }
    source = ", ".join(str(p) for p in paths.values())
    return spec.parser(paths, source)
