"""The batched dropout explorer against the published way (one hooked forward pass per member).

Every candidate the explorer produces must be the hooked forward pass with the noise its seed
gives (``member_masks`` per member, ``pass_noise`` per pass), whatever path evaluates it
(folded into the next layer's weights, the member-batched generic path, the sparse per-pass
fold, or hooked passes for networks without a plan), and whatever the chunking.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from multisteal.errors import InvalidInputError
from multisteal.models import TorchMLPClassifier, train_target
from multisteal.models.cnn import TorchCNNClassifier, small_cnn
from multisteal.models.torch_base import init_uniform_
from multisteal.rashomon import DropoutExplorer, ExplorationContext, distinct_candidates
from multisteal.rashomon.base import NOT_ACCEPTED, unwrap
from multisteal.rashomon.dropout import (
    NOT_TORCH,
    _NoiseStream,
    _plan,
    hooked_forward,
    layer_units,
    member_masks,
    pass_noise,
    perturbed_modules,
)

ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu-inplace": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def _mlp(activation: str = "relu", hidden=(12, 7), n_classes: int = 3, seed: int = 0):
    layers: list[nn.Module] = []
    width = 5
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return init_uniform_(nn.Sequential(*layers), torch.Generator().manual_seed(seed))


def _cnn(seed: int = 0) -> nn.Module:
    return small_cnn((1, 8, 8), 3, torch.Generator().manual_seed(seed), channels=(3, 4), hidden=6)


class _Residual(nn.Module):
    """Not a Sequential: evaluated by hooked passes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 9)
        self.b = nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))) + x[:, :3]


def _wrap(module: nn.Module, sample: tuple[int, ...], n_classes: int):
    """A 'fitted' torch classifier around a hand-built module."""
    if len(sample) == 1:
        model = TorchMLPClassifier(())
        model.n_features_in_ = sample[0]
    else:
        model = TorchCNNClassifier((3, 4), hidden=6)
        model.input_shape_ = sample
    model.module_ = module.eval()
    model.n_classes_ = n_classes
    model.classes_ = np.arange(n_classes)
    return model


def _inputs(sample: tuple[int, ...], n: int = 70, seed: int = 5) -> dict[str, np.ndarray]:
    X = np.random.default_rng(seed).normal(size=(n, *sample))
    return {"holdout": X[:25], "evaluation": X[25:]}


def _explore(module, sample, explorer: DropoutExplorer, *, seed: int = 3, chunk=2**30, n=70):
    n_classes = layer_units(perturbed_modules(module, "all"))[-1]
    inputs = _inputs(sample, n)
    context = ExplorationContext(
        surrogate=_wrap(module, sample, n_classes),
        inputs=inputs,
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        rng=np.random.default_rng(seed),
        max_chunk_bytes=chunk,
    )
    return explorer.explore(context), np.concatenate(list(inputs.values()))


def _all_outputs(candidates) -> np.ndarray:
    return np.concatenate([candidates.output("holdout"), candidates.output("evaluation")], axis=1)


def _hooked_candidates(module, X, explorer: DropoutExplorer, seed: int = 3) -> np.ndarray:
    """Every candidate by one hooked forward pass with the documented noise (the reference
    with none): the published code's way, member by member."""
    seeds = explorer.member_seeds(np.random.default_rng(seed))
    targets = perturbed_modules(module, explorer.layers)
    units = layer_units(targets)
    rows = torch.tensor(X, dtype=torch.float32)
    shapes: list[tuple[int, ...]] = []
    handles = [t.register_forward_hook(lambda _m, _a, o: shapes.append(o.shape)) for t in targets]
    with torch.no_grad():
        module(rows)
    for handle in handles:
        handle.remove()
    out = [hooked_forward(module, rows, [torch.ones(u) for u in units], layers=explorer.layers)]
    for i, rate in enumerate(explorer.grid()):
        for j in range(explorer.members_per_rate):
            if explorer.semantics == "per-member":
                noise = member_masks(int(seeds[i, j]), units, explorer.kind, float(rate))
            else:
                noise = pass_noise(int(seeds[i, j]), shapes, explorer.kind, float(rate))
            out.append(hooked_forward(module, rows, noise, layers=explorer.layers))
    return torch.softmax(torch.stack(out).double(), dim=-1).numpy()


RATES = [0.0, 0.05, 0.3]


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ["relu", "relu-inplace", "tanh", "gelu"])
@pytest.mark.parametrize("layers", ["all", "hidden"])
def test_per_member_batched_equals_hooked_mlp(kind, activation, layers) -> None:
    """Catches: a fold of the mask into the next layer's weights that is wrong (a Gaussian
    mask's negative part, the mask on the wrong axis), masks of one member applied to
    another, a layer perturbed or left out against ``layers``, wrong rows per member."""
    module = _mlp(activation)
    rates = [*RATES, 1.5 if kind == "gaussian" else 0.6]  # 1 + 1.5z < 0 for a quarter of units
    explorer = DropoutExplorer(kind=kind, rates=rates, members_per_rate=3, layers=layers)
    candidates, X = _explore(module, (5,), explorer)
    np.testing.assert_allclose(
        _all_outputs(candidates), _hooked_candidates(module, X, explorer), rtol=0, atol=1e-6
    )
    plan = _plan(module, perturbed_modules(module, layers), (5,))
    assert plan is not None
    # relu folds the first mask into the next Linear layer; tanh and gelu cannot.
    assert (plan.fold is not None) == activation.startswith("relu")


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("layers", ["all", "hidden"])
@pytest.mark.parametrize("semantics", ["per-member", "per-pass"])
def test_batched_equals_hooked_cnn(kind, layers, semantics) -> None:
    """Conv masks are per channel; the first one folds through ReLU and max-pooling into the
    next convolution's input channels (per member). Catches a channel map through pooling or
    Flatten that is off, a convolution folded with the wrong weights."""
    module = _cnn()
    explorer = DropoutExplorer(
        kind=kind, semantics=semantics, rates=RATES, members_per_rate=2, layers=layers
    )
    candidates, X = _explore(module, (1, 8, 8), explorer, n=40)
    np.testing.assert_allclose(
        _all_outputs(candidates), _hooked_candidates(module, X, explorer), rtol=0, atol=1e-6
    )
    plan = _plan(module, perturbed_modules(module, layers), (1, 8, 8))
    assert plan is not None
    assert plan.fold == 3  # Conv - ReLU - MaxPool - Conv


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_conv_head_folds_through_flatten(kind) -> None:
    module = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(20, 2)
    )
    init_uniform_(module, torch.Generator().manual_seed(1))
    X = np.random.default_rng(0).normal(size=(50, 16))
    explorer = DropoutExplorer(kind=kind, rates=RATES, members_per_rate=3)
    context = ExplorationContext(
        _wrap(module, (16,), 2),
        {"evaluation": X},
        None,
        None,
        np.random.default_rng(3),  # type: ignore[arg-type]
    )
    candidates = explorer.explore(context)
    np.testing.assert_allclose(
        candidates.output("evaluation"), _hooked_candidates(module, X, explorer), atol=1e-6
    )
    plan = _plan(module, perturbed_modules(module), (16,))
    assert plan is not None
    assert plan.fold == 4
    # Every feature after Flatten comes from the channel of its 2x2 block.
    np.testing.assert_array_equal(plan.channel_map.numpy(), np.repeat(np.arange(5), 4))


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("hidden", [(16,), (12, 7)])
def test_per_pass_equals_hooked_with_the_same_noise(kind, activation, hidden) -> None:
    """Per pass, the explorer's noise is ``pass_noise`` of the pass's seed over all rows (the
    input sets in order). With one ReLU hidden layer and two classes the Bernoulli noise of
    the hidden layer folds sparsely into the output layer (only dropped entries touched).
    Catches: the sparse correction off (scale, bias, rows), noise applied to the wrong
    elements or rows, a layer without fresh noise."""
    module = _mlp(activation, hidden, n_classes=2)
    explorer = DropoutExplorer(
        kind=kind, semantics="per-pass", rates=RATES, members_per_rate=3, batch_size=30
    )
    candidates, X = _explore(module, (5,), explorer)
    np.testing.assert_allclose(
        _all_outputs(candidates), _hooked_candidates(module, X, explorer), rtol=0, atol=1e-6
    )
    plan = _plan(module, perturbed_modules(module), (5,))
    assert plan is not None
    assert plan.sparse == (activation == "relu")  # into a Linear layer of at most 8 units


@pytest.mark.parametrize("semantics", ["per-member", "per-pass"])
def test_networks_without_a_plan_use_hooked_passes(semantics) -> None:
    torch.manual_seed(0)
    module = _Residual()
    assert _plan(module, perturbed_modules(module), (5,)) is None
    explorer = DropoutExplorer(semantics=semantics, rates=RATES, members_per_rate=2)
    candidates, X = _explore(module, (5,), explorer)
    got, expected = _all_outputs(candidates), _hooked_candidates(module, X, explorer)
    noisy = candidates.params["rate"].to_numpy() > 0
    # The reference (and rate 0) are predict_proba's outputs, the others the same passes.
    np.testing.assert_allclose(got[~noisy], expected[~noisy], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[noisy], expected[noisy], rtol=0, atol=1e-12)
    assert all(not m._forward_hooks for m in module.modules())


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("semantics", ["per-member", "per-pass"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_chunking_does_not_change_the_candidates(kind, semantics, activation) -> None:
    """Catches: a chunk boundary that shifts members or masks, members evaluated together
    differently in different chunkings, noise streams restarted at a chunk boundary."""
    module = _mlp(activation, (16,), n_classes=2)
    explorer = DropoutExplorer(kind=kind, semantics=semantics, rates=RATES, members_per_rate=7)
    whole, _ = _explore(module, (5,), explorer)
    assert len(whole.params) == 22
    # ~2 members per chunk (one member's outputs: 70 rows x 2 classes x 8 bytes)
    parts, _ = _explore(module, (5,), explorer, chunk=2500)
    np.testing.assert_array_equal(_all_outputs(parts), _all_outputs(whole))
    assert parts.params.equals(whole.params)
    # Smaller groups of members and blocks of rows: the same up to float rounding.
    small = dataclasses.replace(explorer, max_activation_bytes=3000, batch_size=17)
    other, _ = _explore(module, (5,), small)
    np.testing.assert_allclose(_all_outputs(other), _all_outputs(whole), rtol=0, atol=1e-6)


def test_chunks_respect_the_memory_bound() -> None:
    module = _mlp()
    explorer = DropoutExplorer(rates=RATES, members_per_rate=4)
    context = ExplorationContext(
        _wrap(module, (5,), 3),
        _inputs((5,)),
        None,
        None,
        np.random.default_rng(0),  # type: ignore[arg-type]
        max_chunk_bytes=70 * 3 * 8 * 5,
    )
    chunks = list(explorer.explore_chunks(context))
    assert [len(c) for c in chunks] == [5, 5, 3]
    assert chunks[0].params["reference"].tolist() == [True] + [False] * 4
    members = np.concatenate([c.params["member"].to_numpy() for c in chunks])
    np.testing.assert_array_equal(members, np.arange(13))


@pytest.mark.parametrize("semantics", ["per-member", "per-pass"])
def test_same_seed_same_set(semantics) -> None:
    module = _mlp()
    explorer = DropoutExplorer(semantics=semantics, rates=[0.1, 0.2], members_per_rate=3)
    a, _ = _explore(module, (5,), explorer, seed=11)
    b, _ = _explore(module, (5,), explorer, seed=11)
    c, _ = _explore(module, (5,), explorer, seed=12)
    np.testing.assert_array_equal(_all_outputs(a), _all_outputs(b))
    assert not np.array_equal(_all_outputs(a)[1:], _all_outputs(c)[1:])


@pytest.mark.parametrize("semantics", ["per-member", "per-pass"])
@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_rate_zero_reproduces_the_reference_exactly(semantics, kind) -> None:
    module = _mlp()
    explorer = DropoutExplorer(kind=kind, semantics=semantics, rates=[0.0, 0.2], members_per_rate=3)
    candidates, _ = _explore(module, (5,), explorer)
    model = _wrap(module, (5,), 3)
    inputs = _inputs((5,))
    for key, x in inputs.items():
        P = candidates.output(key)
        np.testing.assert_array_equal(P[0], model.predict_proba(x))  # the surrogate's own
        for member in (1, 2, 3):
            np.testing.assert_array_equal(P[member], P[0])
        for member in (4, 5, 6):
            assert not np.array_equal(P[member], P[0])
    assert candidates.params["rate"].tolist() == [0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2]
    assert candidates.params["draw"].tolist() == [-1, 0, 1, 2, 0, 1, 2]


def test_a_scikit_learn_model_is_refused(blobs, rng) -> None:
    X, y = blobs
    model = train_target("logistic", X, y)
    explorer = DropoutExplorer()
    assert explorer.accepts(model) == NOT_TORCH
    assert explorer.accepts(_wrap(_mlp(), (5,), 3)) is None
    context = ExplorationContext(model, {"evaluation": X}, None, None, rng)  # type: ignore[arg-type]
    _, inner = unwrap(model)
    expected = NOT_ACCEPTED.format(explorer="dropout", model=type(inner).__name__, reason=NOT_TORCH)
    with pytest.raises(InvalidInputError) as info:
        explorer.explore(context)
    assert str(info.value) == expected
    with pytest.raises(InvalidInputError):
        next(iter(explorer.explore_chunks(context)))
    assert "retrain, ensemble or logistic" in NOT_TORCH


def test_identical_masks_give_identical_outputs_across_chunks() -> None:
    """A single output layer of two units has few mask patterns: draws that share one are
    the same model and must be bit-identical (so ``distinct_candidates`` counts it once),
    also when they fall in different chunks."""
    module = init_uniform_(nn.Sequential(nn.Linear(5, 2)), torch.Generator().manual_seed(0))
    explorer = DropoutExplorer(rates=[0.1, 0.2], members_per_rate=20)
    whole, _ = _explore(module, (5,), explorer)
    parts, _ = _explore(module, (5,), explorer, chunk=3000)
    np.testing.assert_array_equal(_all_outputs(parts), _all_outputs(whole))
    # No room to cache an earlier chunk's outputs: their group is evaluated again.
    tight = dataclasses.replace(explorer, max_activation_bytes=1000)
    np.testing.assert_array_equal(
        _all_outputs(_explore(module, (5,), tight, chunk=3000)[0]),
        _all_outputs(_explore(module, (5,), tight)[0]),
    )
    seeds = explorer.member_seeds(np.random.default_rng(3))
    patterns = {}
    P = _all_outputs(whole)
    for i, rate in enumerate(explorer.grid()):
        for j in range(20):
            mask = member_masks(int(seeds[i, j]), [2], "bernoulli", float(rate))[0]
            patterns.setdefault(mask.numpy().tobytes(), []).append(1 + i * 20 + j)
    assert any(len(m) > 1 for m in patterns.values())
    for members in patterns.values():
        for m in members[1:]:
            np.testing.assert_array_equal(P[m], P[members[0]])
    distinct, _ = distinct_candidates(whole)
    assert len(distinct) == 1 + len(patterns)


# -- the noise ------------------------------------------------------------------------------


def test_member_masks_bernoulli() -> None:
    """Catches: survivors not scaled by 1/(1-p), a share other than p dropped, p = 0 not all
    ones, masks of ``hidden`` not those of ``all`` without the output layer."""
    rate = 0.2
    masks = member_masks(7, [30_000, 2], "bernoulli", rate)
    assert [m.shape for m in masks] == [(30_000,), (2,)]
    values = masks[0].numpy()
    zero = values == 0.0
    assert ((values == np.float32(1 / (1 - rate))) | zero).all()
    assert abs(zero.mean() - rate) < 0.012  # sd 0.0023
    torch.testing.assert_close(member_masks(7, [30_000], "bernoulli", rate)[0], masks[0])
    assert not torch.equal(member_masks(8, [30_000], "bernoulli", rate)[0], masks[0])
    for mask in member_masks(7, [50, 2], "bernoulli", 0.0):
        assert torch.equal(mask, torch.ones_like(mask))


def test_member_masks_gaussian() -> None:
    rate = 0.3
    values = member_masks(7, [40_000], "gaussian", rate)[0].numpy()
    # sd of the mean 0.0015, of the std 0.001; 1 + p²z or 1 + sqrt(p)z are far outside.
    assert abs(values.mean() - 1.0) < 0.01
    assert abs(values.std() - rate) < 0.01
    assert torch.equal(member_masks(7, [9], "gaussian", 0.0)[0], torch.ones(9))


def test_pass_noise_drops_each_element_independently_with_probability_p() -> None:
    """Geometric gaps give exactly i.i.d. Bernoulli(p) drops: the share, the per-row count's
    mean and variance (binomial), neighbours (p²) and survivors scaled by 1/(1-p)."""
    rate = 0.15
    (M,) = pass_noise(3, [(2000, 300)], "bernoulli", rate)
    dropped = M.numpy() == 0.0
    assert ((M.numpy() == np.float32(1 / (1 - rate))) | dropped).all()
    assert abs(dropped.mean() - rate) < 0.003  # 600 000 elements: sd 0.00046
    counts = dropped.sum(axis=1)
    assert abs(counts.mean() - 300 * rate) < 0.5  # sd 0.14
    assert abs(counts.var() / (300 * rate * (1 - rate)) - 1) < 0.1  # sd of the ratio ~0.03
    pairs = (dropped[:, 1:] & dropped[:, :-1]).mean()
    assert abs(pairs - rate**2) < 0.003
    columns = dropped.mean(axis=0)  # every unit dropped at the same rate
    assert abs(columns.mean() - rate) < 0.003
    assert columns.std() < 3 * np.sqrt(rate * (1 - rate) / 2000)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_noise_streams_do_not_depend_on_the_blocks(kind) -> None:
    whole = _NoiseStream(5, 1, kind, 0.1).multiplier((10_000,))
    stream = _NoiseStream(5, 1, kind, 0.1)
    sizes = [1, 0, 37, 2000, 3, 5000, 2959]
    parts = torch.cat([stream.multiplier((n,)) for n in sizes])
    assert torch.equal(parts, whole)
    other = _NoiseStream(5, 2, kind, 0.1).multiplier((10_000,))  # another layer
    assert not torch.equal(other, whole)


def test_per_pass_outputs_match_the_published_noise_in_distribution() -> None:
    """The explorer's per-pass outputs against hooked passes drawing fresh noise in their hooks
    (``torch.rand(shape) >= p``, the published code): the mean and the variance of every
    row's output over many passes agree within sampling error."""
    module = _mlp("relu", (16,), n_classes=2, seed=4)
    rate, passes = 0.3, 400
    X = np.random.default_rng(2).normal(size=(10, 5))
    explorer = DropoutExplorer(semantics="per-pass", rates=[rate], members_per_rate=passes)
    context = ExplorationContext(
        _wrap(module, (5,), 2),
        {"evaluation": X},
        None,
        None,
        np.random.default_rng(0),  # type: ignore[arg-type]
    )
    ours = explorer.explore(context).output("evaluation")[1:, :, 1]  # (passes, rows)

    def fresh(_position: int, out: torch.Tensor) -> torch.Tensor:
        return (torch.rand(out.shape, generator=generator) >= rate).float() / (1 - rate)

    generator = torch.Generator().manual_seed(0)
    rows = torch.tensor(X, dtype=torch.float32)
    theirs = np.stack(
        [
            torch.softmax(hooked_forward(module, rows, fresh).double(), 1)[:, 1].numpy()
            for _ in range(passes)
        ]
    )
    se = np.sqrt((ours.var(axis=0) + theirs.var(axis=0)) / passes)
    z = (ours.mean(axis=0) - theirs.mean(axis=0)) / se
    assert np.abs(z).max() < 4.0
    ratio = ours.var(axis=0) / theirs.var(axis=0)
    assert (np.abs(np.log(ratio)) < 0.35).all()  # F(399, 399): log-ratio sd ~0.1
    assert ours.var(axis=0).min() > 1e-6  # passes differ


def test_a_raw_input_pipeline_is_perturbed_after_its_encoder() -> None:
    """A pipeline (image encoder + CNN) is explored on raw images: the encoder is applied
    once and not perturbed; the reference is the pipeline's own output, placed at the
    pipeline's classes when its classifier saw fewer; an empty input set stays empty."""
    from multisteal.models import InputPipeline
    from multisteal.models.pipeline import ImageEncoder

    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 8, 8))
    labels = np.arange(60) % 2  # classes 0 and 1 of 3
    cnn = TorchCNNClassifier((3, 4), hidden=6, epochs=1, min_steps=2, random_state=0)
    pipeline = InputPipeline(ImageEncoder(), cnn, n_classes=3).fit(images, labels)
    explorer = DropoutExplorer(rates=[0.0, 0.3], members_per_rate=2)
    assert explorer.accepts(pipeline) is None
    inputs = {"holdout": images[:20], "empty": images[:0], "evaluation": images[20:]}
    context = ExplorationContext(pipeline, inputs, None, None, np.random.default_rng(4))  # type: ignore[arg-type]
    candidates = explorer.explore(context)
    assert candidates.output("empty").shape == (5, 0, 3)
    module = pipeline.model_.module_
    seeds = explorer.member_seeds(np.random.default_rng(4))
    units = layer_units(perturbed_modules(module))
    for key in ("holdout", "evaluation"):
        P = candidates.output(key)
        assert P.shape == (5, len(inputs[key]), 3)
        np.testing.assert_array_equal(P[0], pipeline.predict_proba(inputs[key]))
        np.testing.assert_array_equal(P[:, :, 2], 0.0)  # a class the classifier never saw
        encoded = torch.from_numpy(pipeline.encode(inputs[key]))
        for j in range(2):
            masks = member_masks(int(seeds[1, j]), units, "bernoulli", 0.3)
            expected = torch.softmax(hooked_forward(module, encoded, masks).double(), 1).numpy()
            np.testing.assert_allclose(P[3 + j, :, :2], expected, rtol=0, atol=1e-6)
