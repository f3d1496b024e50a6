"""The model zoo: named model families for targets and surrogates, per input modality.

Each :class:`ModelSpec` names a classifier factory (on encoded inputs), the input modalities it
serves and the encoder that turns raw inputs of that modality into its inputs.
:func:`make_pipeline` builds the raw-input model (:class:`~multisteal.models.InputPipeline`)
that targets and surrogates both are; :func:`make_model` / :func:`train_target` build the bare
classifier on already encoded inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from multisteal.data.inputs import InputSpec
from multisteal.errors import InvalidInputError
from multisteal.models.mlp import TorchMLPClassifier
from multisteal.models.pipeline import EmbeddingEncoder, ImageEncoder, InputPipeline

__all__ = [
    "MODELS",
    "SURROGATE_ALIASES",
    "Classifier",
    "ModelSpec",
    "make_model",
    "make_pipeline",
    "models_for",
    "resolve_model_name",
    "train_target",
]

UNKNOWN_MODEL = "Unknown model {name!r}. Available models: {available}."
BAD_PARAMS = "Invalid parameters for model {name!r}: {error}"
WRONG_MODALITY = (
    "Model {name!r} takes {modalities} inputs, but the data are {modality}. Models for "
    "{modality} data: {available}."
)


@runtime_checkable
class Classifier(Protocol):
    """What multisteal needs of a fitted classifier: scikit-learn's ``predict_proba``."""

    classes_: Any

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict_proba(self, X: Any) -> NDArray[np.float64]: ...


def _tabular_encoder(spec: InputSpec, params: Mapping[str, Any]) -> Any:
    from multisteal.data.inputs import TabularSpec
    from multisteal.data.preprocessing import TabularPreprocessor

    assert isinstance(spec, TabularSpec)
    return TabularPreprocessor(
        categorical=list(spec.categorical),
        numerical=list(spec.numerical),
        max_categories=params.get("max_categories", 50),
    )


def _image_encoder(spec: InputSpec, params: Mapping[str, Any]) -> Any:
    return ImageEncoder()


def _tfidf_encoder(spec: InputSpec, params: Mapping[str, Any]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, max_features=50_000, dtype=np.float64
    )


def _embedding_encoder(spec: InputSpec, params: Mapping[str, Any]) -> Any:
    return EmbeddingEncoder(cache_dir=params.get("embedding_cache"))


@dataclass(frozen=True)
class ModelSpec:
    """A named model family.

    Attributes
    ----------
    factory : the classifier on encoded inputs, from a seed and keyword parameters.
    modalities : the raw input modalities the family serves.
    encoder : ``(input spec, encoder parameters) -> unfitted encoder`` of raw inputs.
    surrogate_defaults : parameters used when the family is the attacker's surrogate.
    torch : whether the classifier is a torch network (the dropout explorer applies).
    """

    name: str
    description: str
    factory: Callable[..., Classifier]
    modalities: tuple[str, ...] = ("tabular",)
    encoder: Callable[[InputSpec, Mapping[str, Any]], Any] = _tabular_encoder
    surrogate_defaults: Mapping[str, Any] = field(default_factory=dict)
    torch: bool = False


def _logistic(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_iter": 2000, "C": 1.0}
    defaults.update(params)
    model: Classifier = LogisticRegression(random_state=random_state, **defaults)
    return model


def _mlp(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"hidden_layer_sizes": (64, 32), "epochs": 20}
    defaults.update(params)
    return TorchMLPClassifier(random_state=random_state, **defaults)


def _torch_logistic(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"epochs": 30}
    defaults.update(params)
    return TorchMLPClassifier(hidden_layer_sizes=(), random_state=random_state, **defaults)


def _gboost(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.1}
    defaults.update(params)
    model: Classifier = HistGradientBoostingClassifier(random_state=random_state, **defaults)
    return model


def _forest(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"n_estimators": 200, "min_samples_leaf": 2, "n_jobs": 1}
    defaults.update(params)
    model: Classifier = RandomForestClassifier(random_state=random_state, **defaults)
    return model


def _tree(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_depth": 5, "min_samples_leaf": 5}
    defaults.update(params)
    model: Classifier = DecisionTreeClassifier(random_state=random_state, **defaults)
    return model


def _cnn(*, random_state: int | None = None, **params: Any) -> Classifier:
    from multisteal.models.cnn import TorchCNNClassifier

    model: Classifier = TorchCNNClassifier(random_state=random_state, **params)
    return model


def _text_logistic(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_iter": 2000, "C": 4.0}
    defaults.update(params)
    model: Classifier = LogisticRegression(random_state=random_state, **defaults)
    return model


def _embedding_mlp(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"hidden_layer_sizes": (128,), "epochs": 30}
    defaults.update(params)
    return TorchMLPClassifier(random_state=random_state, **defaults)


MODELS: Mapping[str, ModelSpec] = {
    "logistic": ModelSpec("logistic", "scikit-learn LogisticRegression (L2, lbfgs)", _logistic),
    "mlp": ModelSpec(
        "mlp",
        "torch MLP (64-32, ReLU, Adam)",
        _mlp,
        surrogate_defaults={"epochs": 40},
        torch=True,
    ),
    "torch-logistic": ModelSpec(
        "torch-logistic",
        "logistic regression as a torch module (dropout-explorable)",
        _torch_logistic,
        surrogate_defaults={"epochs": 60, "lr": 1e-2},
        torch=True,
    ),
    "gboost": ModelSpec("gboost", "scikit-learn HistGradientBoostingClassifier", _gboost),
    "forest": ModelSpec(
        "forest",
        "scikit-learn RandomForestClassifier (200 trees, min_samples_leaf 2, max_features sqrt, "
        "one job)",
        _forest,
    ),
    "tree": ModelSpec(
        "tree",
        "scikit-learn DecisionTreeClassifier (max_depth 5, min_samples_leaf 5); reveals its "
        "leaf ids under --output leaf",
        _tree,
    ),
    "cnn": ModelSpec(
        "cnn",
        "small torch CNN (conv 16-32, max-pool, dense 64) on standardised images",
        _cnn,
        modalities=("image",),
        encoder=_image_encoder,
        torch=True,
    ),
    "tfidf-logistic": ModelSpec(
        "tfidf-logistic",
        "TF-IDF of word 1-2-grams (sublinear tf, 50,000 features) + LogisticRegression (C=4)",
        _text_logistic,
        modalities=("text",),
        encoder=_tfidf_encoder,
    ),
    "minilm-mlp": ModelSpec(
        "minilm-mlp",
        "frozen all-MiniLM-L6-v2 sentence embeddings (384-d, cached) + torch MLP head (128)",
        _embedding_mlp,
        modalities=("text",),
        encoder=_embedding_encoder,
        torch=True,
    ),
}

SURROGATE_ALIASES: Mapping[str, str] = {"logistic": "torch-logistic"}
"""As the attacker's surrogate, ``logistic`` is the torch logistic regression, so that every
explorer (dropout included) applies to it."""


def resolve_model_name(name: str, *, surrogate: bool = False) -> str:
    """The zoo family of ``name`` (a surrogate's ``logistic`` is ``torch-logistic``)."""
    resolved = SURROGATE_ALIASES.get(name, name) if surrogate else name
    if resolved not in MODELS:
        raise InvalidInputError(UNKNOWN_MODEL.format(name=name, available=", ".join(MODELS)))
    return resolved


def models_for(modality: str) -> tuple[str, ...]:
    """The families that serve ``modality``."""
    return tuple(name for name, spec in MODELS.items() if modality in spec.modalities)


def make_pipeline(
    name: str,
    spec: InputSpec,
    *,
    n_classes: int | None = None,
    random_state: int | None = None,
    surrogate: bool = False,
    encoder_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> InputPipeline:
    """An unfitted raw-input model of the named family for inputs described by ``spec``.

    ``surrogate=True`` applies the family's surrogate defaults and the surrogate aliases
    (:data:`SURROGATE_ALIASES`); torch classifiers get ``n_classes`` so a transcript lacking a
    class still gives one output per class.
    """
    family = MODELS[resolve_model_name(name, surrogate=surrogate)]
    if spec.modality not in family.modalities:
        raise InvalidInputError(
            WRONG_MODALITY.format(
                name=name,
                modalities="/".join(family.modalities),
                modality=spec.modality,
                available=", ".join(models_for(spec.modality)),
            )
        )
    merged: dict[str, Any] = dict(family.surrogate_defaults) if surrogate else {}
    merged.update(params)
    if family.torch and n_classes is not None:
        merged.setdefault("n_classes", n_classes)
    model = make_model(family.name, random_state=random_state, **merged)
    encoder = family.encoder(spec, dict(encoder_params or {}))
    return InputPipeline(encoder, model, n_classes=n_classes)


def make_model(name: str, *, random_state: int | None = None, **params: Any) -> Classifier:
    """Create an unfitted model of the named family."""
    try:
        spec = MODELS[name]
    except KeyError:
        raise InvalidInputError(
            UNKNOWN_MODEL.format(name=name, available=", ".join(MODELS))
        ) from None
    try:
        return spec.factory(random_state=random_state, **params)
    except TypeError as exc:
        raise InvalidInputError(BAD_PARAMS.format(name=name, error=exc)) from exc


def train_target(
    name: str, X: ArrayLike, y: ArrayLike, *, random_state: int | None = None, **params: Any
) -> Classifier:
    """Create and fit a target model of the named family on ``(X, y)``."""
    model = make_model(name, random_state=random_state, **params)
    model.fit(np.asarray(X, dtype=np.float64), np.asarray(y))
    return model
