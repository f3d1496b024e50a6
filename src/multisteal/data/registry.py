"""The dataset registry and :func:`load_dataset`.

Each entry of :data:`DATASETS` describes where a dataset's files come from (file names,
SHA-256 digests, canonical URLs, bundled copies), its license and citation, and the parser
that turns the verified files into a dataset object (any :class:`~multisteal.data.Dataset`:
tabular, image or text). Adding a dataset means adding an entry; callers of
:func:`load_dataset` do not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from multisteal.data._dataset import Dataset, Modality
from multisteal.data._files import FileSpec, resolve_file
from multisteal.data._images import parse_breastmnist, parse_pneumoniamnist
from multisteal.data._tabular import parse_adult, parse_compas, parse_german_credit
from multisteal.data._text import parse_eec, parse_rotten_tomatoes, parse_sst2
from multisteal.errors import DataError

__all__ = ["DATASETS", "DatasetSpec", "FileSpec", "available_datasets", "load_dataset"]

UNKNOWN_DATASET_MSG = "Unknown dataset {name!r}. Available datasets: {available}."

Parser = Callable[[Mapping[str, Path], str], Dataset]


@dataclass(frozen=True)
class DatasetSpec:
    """Registry entry of one dataset.

    Attributes:
        name: registry key, also the loaded dataset's ``name``.
        description: one line on what the data is.
        files: the upstream files the parser needs, with digests and URLs.
        parser: ``(paths by file name, source) -> dataset``.
        homepage: the dataset's landing page.
        license: license of the data.
        citation: how to cite it.
        modality: the kind of inputs the parser returns: ``"tabular"``, ``"image"`` or
            ``"text"``.
        default_split: the audit's split sizes when none are given (target-train, pool,
            evaluation), or ``None`` for the general defaults.
        default_budgets: the audit's query budgets when none are given (they must fit in the
            attacker's pool), or ``None`` for the general defaults.
    """

    name: str
    description: str
    files: tuple[FileSpec, ...]
    parser: Parser
    homepage: str
    license: str
    citation: str
    modality: Modality = "tabular"
    default_split: tuple[int | float, int | float, int | float] | None = None
    default_budgets: tuple[int, ...] | None = None


_UCI_ADULT = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_COMPAS_URL = (
    "https://raw.githubusercontent.com/propublica/compas-analysis/"
    "bafff5da3f2e45eca6c2d5055faad269defd135a/compas-scores-two-years.csv"
)
_GERMAN_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/german.data"
# MedMNIST v2 on Zenodo (the URLs the medmnist package downloads; the files are served as-is).
_MEDMNIST_ZENODO = "https://zenodo.org/records/10519652/files/{file}?download=1"
_MEDMNIST_CITATION = (
    "Yang, J., Shi, R., Wei, D., Liu, Z., Zhao, L., Ke, B., Pfister, H. & Ni, B. (2023). "
    "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image "
    "classification. Scientific Data 10, 41. https://doi.org/10.1038/s41597-022-01721-8"
)
# SST-2 is published by GLUE only inside https://dl.fbaipublicfiles.com/glue/data/SST-2.zip, and
# the download code stores what a URL returns as the file itself (it unpacks no archive). These
# are direct links, pinned to a commit, to copies of the two GLUE files whose SHA-256 is the one
# below (train.tsv is that repository's glue_data/SST-2/train_full.tsv); the checksum is what
# makes them trustworthy.
_SST2_RAW = (
    "https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/"
    "53e9e221b58e5ed882a56c9d8be838b895351165/glue_data/SST-2/"
)
# Likewise Rotten Tomatoes is published only inside the Cornell tarball
# http://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz; these are
# pinned direct links to the copies in Kim (2014)'s CNN_sentence repository.
_RT_RAW = (
    "https://raw.githubusercontent.com/yoonkim/CNN_sentence/"
    "4abc8df1de694999ff54826854d3ebc53e3e9c20/"
)
# The NRC publishes the EEC as a zip on https://saifmohammad.com/WebPages/Biases-SA.html; this is
# a pinned direct link to a copy of its CSV (8,640 rows, the paper's columns).
_EEC_URL = (
    "https://raw.githubusercontent.com/abishekarun/Text-Emotion-Classification/"
    "7ac54f67d7db51d6820bbdae553b4bb9c6da28e0/Equity-Evaluation-Corpus.csv"
)

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
        modality="tabular",
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
        modality="tabular",
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
        modality="tabular",
        homepage="https://archive.ics.uci.edu/dataset/144/statlog+german+credit+data",
        license="CC BY 4.0",
        citation=(
            "Hofmann, H. (1994). Statlog (German Credit Data) [Dataset]. UCI Machine Learning "
            "Repository. https://doi.org/10.24432/C5NC77"
        ),
    ),
    "breastmnist": DatasetSpec(
        name="breastmnist",
        description=(
            "MedMNIST v2 BreastMNIST: 780 breast ultrasound images, 28x28 grayscale, official "
            "split 546/78/156; 0 malignant, 1 normal or benign (positive class: the favourable "
            "outcome for the patient); no demographic attributes."
        ),
        files=(
            FileSpec(
                name="breastmnist.npz",
                sha256="3a22d2a4625e7dd8903f0f59030e81a3d0c222bece2e5e10927456cb50efdec1",
                url=_MEDMNIST_ZENODO.format(file="breastmnist.npz"),
                bundled="breastmnist.npz",  # already zip-compressed: bundled as-is
            ),
        ),
        parser=parse_breastmnist,
        homepage="https://medmnist.com/",
        license="CC BY 4.0",
        citation=_MEDMNIST_CITATION
        + (
            "; images from Al-Dhabyani, W., Gomaa, M., Khaled, H. & Fahmy, A. (2020). Dataset "
            "of breast ultrasound images. Data in Brief 28, 104863."
        ),
        modality="image",
        default_budgets=(
            50,
            100,
            250,
        ),  # the pool is half of the 546 official training images (273),
    ),
    "pneumoniamnist": DatasetSpec(
        name="pneumoniamnist",
        description=(
            "MedMNIST v2 PneumoniaMNIST: 5,856 paediatric chest X-rays, 28x28 grayscale, "
            "official split 4,708/524/624; 0 normal, 1 pneumonia (positive class: normal, the "
            "favourable outcome for the patient); no demographic attributes."
        ),
        files=(
            FileSpec(
                name="pneumoniamnist.npz",
                sha256="e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8",
                url=_MEDMNIST_ZENODO.format(file="pneumoniamnist.npz"),
                bundled="pneumoniamnist.npz",  # already zip-compressed: bundled as-is
            ),
        ),
        parser=parse_pneumoniamnist,
        homepage="https://medmnist.com/",
        license="CC BY 4.0",
        citation=_MEDMNIST_CITATION
        + (
            "; images from Kermany, D. S. et al. (2018). Identifying medical diagnoses and "
            "treatable diseases by image-based deep learning. Cell 172(5), 1122-1131."
        ),
        modality="image",
        default_budgets=(
            250,
            1000,
            2000,
        ),  # the pool is half of the 4,708 official training images (2,354),
    ),
    "sst2": DatasetSpec(
        name="sst2",
        description=(
            "SST-2 (GLUE): movie-review sentences, negative/positive (positive class: "
            "positive); 67,349 train + 872 dev (the test part); no sensitive attributes."
        ),
        files=(
            FileSpec(
                name="train.tsv",
                sha256="48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                url=_SST2_RAW + "train_full.tsv",
                bundled="sst2-train.tsv.gz",
            ),
            FileSpec(
                name="dev.tsv",
                sha256="54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                url=_SST2_RAW + "dev.tsv",
                bundled="sst2-dev.tsv.gz",
            ),
        ),
        parser=parse_sst2,
        homepage="https://nlp.stanford.edu/sentiment/",
        license="Unknown (SST states no license; GLUE redistributes it for research use)",
        citation=(
            "Socher, R., Perelygin, A., Wu, J., Chuang, J., Manning, C. D., Ng, A. & Potts, C. "
            "(2013). Recursive Deep Models for Semantic Compositionality Over a Sentiment "
            "Treebank. EMNLP 2013; Wang, A. et al. (2018). GLUE: A Multi-Task Benchmark and "
            "Analysis Platform for Natural Language Understanding. arXiv:1804.07461"
        ),
        modality="text",
        # 20,000 sentences train the target and 10,000 form the attacker's pool (the explorer
        # floor embeds them all); the 872 dev sentences are the evaluation rows.
        default_split=(20_000, 10_000, 1.0),
    ),
    "rotten_tomatoes": DatasetSpec(
        name="rotten_tomatoes",
        description=(
            "Rotten Tomatoes sentence polarity v1.0 (Pang & Lee): 5,331 negative + 5,331 "
            "positive review snippets (positive class: positive); no official split, no "
            "sensitive attributes."
        ),
        files=(
            FileSpec(
                name="rt-polarity.neg",
                sha256="4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",
                url=_RT_RAW + "rt-polarity.neg",
                bundled="rt-polarity.neg.gz",
            ),
            FileSpec(
                name="rt-polarity.pos",
                sha256="2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",
                url=_RT_RAW + "rt-polarity.pos",
                bundled="rt-polarity.pos.gz",
            ),
        ),
        parser=parse_rotten_tomatoes,
        homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
        license="Unknown (distributed freely by the authors for research; no license stated)",
        citation=(
            "Pang, B. & Lee, L. (2005). Seeing stars: Exploiting class relationships for "
            "sentiment categorization with respect to rating scales. ACL 2005"
        ),
        modality="text",
    ),
    "eec": DatasetSpec(
        name="eec",
        description=(
            "Equity Evaluation Corpus: 8,640 template sentences differing in the person's "
            "gender and race, a bias probe; labels are emotions (anger, fear, joy, none, "
            "sadness; positive class: joy), not sentiment."
        ),
        files=(
            FileSpec(
                name="Equity-Evaluation-Corpus.csv",
                sha256="d90ff4e56e46475c12d0bb89c2f7bb3e3d23ef36d0fb64e1fb371157c80a45c3",
                url=_EEC_URL,
                bundled="Equity-Evaluation-Corpus.csv.gz",
            ),
        ),
        parser=parse_eec,
        homepage="https://saifmohammad.com/WebPages/Biases-SA.html",
        license="Unknown for this copy (the NRC's terms of use apply; research use)",
        citation=(
            "Kiritchenko, S. & Mohammad, S. M. (2018). Examining Gender and Race Bias in Two "
            "Hundred Sentiment Analysis Systems. *SEM 2018"
        ),
        modality="text",
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
) -> Dataset:
    """Load a registered dataset by name.

    Each file is taken from the first of: ``data_dir``; the ``MULTISTEAL_DATA`` directory
    (as ``<dir>/<file>`` or ``<dir>/<name>/<file>``, plain or ``.gz``); the copy bundled with
    the package; the download cache (``MULTISTEAL_CACHE`` or ``~/.cache/multisteal``); a
    download from the canonical URL when ``download`` is true. Every file's SHA-256 is checked.

    The result is a :class:`~multisteal.data.TabularDataset`, ``ImageDataset`` or
    ``TextDataset`` (see ``DATASETS[name].modality``); all satisfy the
    :class:`~multisteal.data.Dataset` protocol.

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
