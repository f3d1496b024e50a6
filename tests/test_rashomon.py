from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from multisteal.attacks import AttackContext, PoolAttack
from multisteal.errors import InvalidInputError
from multisteal.models import TorchMLPClassifier, train_target
from multisteal.query import Answer, LocalQueryAPI
from multisteal.rashomon import (
    Candidates,
    DropoutExplorer,
    ExplorationContext,
    RetrainExplorer,
    candidate_losses,
    default_rates,
    perturbed_modules,
    rashomon_set,
)
from multisteal.rashomon.base import BAD_EPSILON, NOT_ACCEPTED, unwrap
from multisteal.rashomon.dropout import (
    NO_HIDDEN_LAYERS,
    NO_LAYERS,
    NOT_TORCH,
    UNKNOWN_LAYERS,
    hooked_forward,
    layer_units,
    member_masks,
    pass_noise,
)
from multisteal.rashomon.retrain import SEED_HIGH, reference_seed
from multisteal.surrogates import fit_surrogate


@pytest.fixture
def surrogate(blobs) -> TorchMLPClassifier:
    X, y = blobs
    return TorchMLPClassifier((16, 8), epochs=5, random_state=0).fit(X, y)


def _context(surrogate, X, rng, transcript=None, refit=None) -> ExplorationContext:
    return ExplorationContext(
        surrogate=surrogate,
        inputs={"holdout": X[:50], "evaluation": X[50:]},
        transcript=transcript,  # type: ignore[arg-type]
        refit=refit,  # type: ignore[arg-type]
        rng=rng,
    )


def _wrap(module: nn.Module, n_features: int) -> TorchMLPClassifier:
    """A 'fitted' TorchMLPClassifier around a hand-built module."""
    model = TorchMLPClassifier(())
    model.module_ = module
    model.n_features_in_, model.n_classes_ = n_features, 2
    return model


def _seeded(build):
    """``build()`` with torch's global seed fixed, so hand-built modules are reproducible."""
    torch.manual_seed(0)
    return build()


def _observe(module: nn.Sequential, explorer: DropoutExplorer, X, rng):
    """Run ``explorer``, check that every candidate is one hooked forward pass with the noise
    the explorer documents, and measure the multiplier every Linear/Conv output received there.

    The explorer evaluates its members together (no forward pass per member), so each
    candidate is reproduced by :func:`hooked_forward` with its noise: ``member_masks`` or
    ``pass_noise`` of its seed in ``explorer.member_seeds`` (the same ``rng`` state), the
    reference with none; the candidates must equal those passes (to 1e-6), so the noise
    measured there is the noise the explorer applied. Pre-hooks on every child record its
    input, and a hook on the Sequential its output, so the (possibly noisy) output of child
    ``i`` is the input of child ``i + 1`` (or the Sequential's output for the last child). The
    multiplier is that output divided by the child applied to its recorded input. Returns the
    candidates and, per candidate (reference first), a dict child index -> multiplier array
    with the layer's output shape.
    """
    seeds = explorer.member_seeds(copy.deepcopy(rng))
    cands = explorer.explore(_context(_wrap(module, X.shape[1]), X, rng))
    targets = perturbed_modules(module, explorer.layers)
    units = layer_units(targets)
    rows = torch.tensor(np.concatenate([X[:50], X[50:]]), dtype=torch.float32)  # the inputs
    shapes: list[tuple[int, ...]] = []
    handles = [
        t.register_forward_hook(lambda _m, _a, out: shapes.append(out.shape)) for t in targets
    ]
    with torch.no_grad():
        module(rows)
    for handle in handles:
        handle.remove()
    passes: list[list[torch.Tensor]] = []
    handles = [module.register_forward_pre_hook(lambda _m, _a: passes.append([]))]
    for child in module:
        handles.append(
            child.register_forward_pre_hook(lambda _m, args: passes[-1].append(args[0].clone()))
        )
    handles.append(module.register_forward_hook(lambda _m, _a, out: passes[-1].append(out)))
    per_rate = explorer.members_per_rate
    try:
        for member, row in cands.params.iterrows():
            if row["reference"]:
                noise = [torch.ones(u) for u in units]
            else:
                i, j = divmod(int(member) - 1, per_rate)  # rate-major: draw j at rate i
                assert (row["rate"], row["draw"]) == (explorer.grid()[i], j)
                seed, rate = int(seeds[i, j]), float(row["rate"])
                if explorer.semantics == "per-member":
                    noise = member_masks(seed, units, explorer.kind, rate)
                else:
                    noise = pass_noise(seed, shapes, explorer.kind, rate)
            logits = hooked_forward(module, rows, noise, layers=explorer.layers)
            expected = torch.softmax(logits.double(), dim=1).numpy()
            got = np.concatenate(
                [cands.output("holdout")[member], cands.output("evaluation")[member]]
            )
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    finally:
        for handle in handles:
            handle.remove()
    multipliers = []
    with torch.no_grad():
        for seen in passes:
            per_layer = {}
            for i, child in enumerate(module):
                if isinstance(child, (nn.Linear, nn.Conv2d)):
                    clean = child(seen[i]).double()
                    per_layer[i] = (seen[i + 1].double() / clean).numpy()
            multipliers.append(per_layer)
    assert len(multipliers) == len(cands)  # one hooked forward pass per candidate
    return cands, multipliers


def _wide() -> nn.Sequential:
    return _seeded(lambda: nn.Sequential(nn.Linear(5, 4000), nn.Linear(4000, 2)))


def _deep() -> nn.Sequential:
    return _seeded(
        lambda: nn.Sequential(
            nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
        )
    )


def _per_unit_pattern(multiplier: np.ndarray) -> np.ndarray:
    """The one multiplier per unit of a per-member draw; fails if it varies across samples."""
    assert np.ptp(multiplier, axis=0).max() < 1e-5, "noise varies across samples"
    return multiplier[0]


def test_default_rate_grids() -> None:
    np.testing.assert_allclose(default_rates("bernoulli"), np.linspace(0, 0.2, 21))
    np.testing.assert_allclose(default_rates("gaussian"), np.linspace(0, 0.6, 21))


def test_dropout_candidates_layout(surrogate, blobs, rng) -> None:
    X, _ = blobs
    cands = DropoutExplorer(rates=[0.0, 0.1], members_per_rate=3).explore(
        _context(surrogate, X, rng)
    )
    assert len(cands) == 1 + 2 * 3
    assert cands.output("holdout").shape == (7, 50, 2)
    assert cands.output("evaluation").shape == (7, 550, 2)
    np.testing.assert_allclose(
        cands.output("evaluation")[0], surrogate.predict_proba(X[50:]), atol=1e-12
    )
    # rate 0 members equal the reference exactly
    for m in (1, 2, 3):
        np.testing.assert_array_equal(cands.output("evaluation")[m], cands.output("evaluation")[0])
    assert list(cands.params["rate"]) == [0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1]


def test_bernoulli_per_member_zeroes_a_share_p_and_scales_survivors(rng) -> None:
    rate = 0.2
    X = rng.normal(size=(60, 5))
    _, seen = _observe(_wide(), DropoutExplorer(rates=[rate], members_per_rate=3), X, rng)
    np.testing.assert_array_equal(seen[0][0], 1.0)  # the reference pass is clean
    patterns = [_per_unit_pattern(s[0]) for s in seen[1:]]
    pooled = np.concatenate(patterns)
    zero = np.abs(pooled) < 1e-6
    survivor = np.abs(pooled - 1 / (1 - rate)) < 1e-5
    assert (zero | survivor).all()  # survivors are scaled by exactly 1/(1-p) = 1.25
    assert abs(zero.mean() - rate) < 0.02  # 12 000 units: sd 0.004
    assert not np.array_equal(patterns[0], patterns[1])  # every member draws its own pattern
    # The output layer follows the same law (layers="all").
    out = np.concatenate([_per_unit_pattern(s[1]) for s in seen[1:]])
    assert ((np.abs(out) < 1e-5) | (np.abs(out - 1.25) < 1e-5)).all()


def test_gaussian_per_member_multiplier_is_one_plus_p_z(rng) -> None:
    rate = 0.3
    X = rng.normal(size=(60, 5))
    explorer = DropoutExplorer(kind="gaussian", rates=[rate], members_per_rate=3)
    _, seen = _observe(_wide(), explorer, X, rng)
    pooled = np.concatenate([_per_unit_pattern(s[0]) for s in seen[1:]])
    # 12 000 units: sd of the mean 0.003, of the std 0.002. 1 + p²z (std 0.09) and
    # 1 + sqrt(p)z (std 0.55) are far outside.
    assert abs(pooled.mean() - 1.0) < 0.015
    assert abs(pooled.std() - rate) < 0.015


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_per_pass_noise_is_fresh_for_every_element(kind, rng) -> None:
    rate = 0.2
    X = rng.normal(size=(60, 5))
    explorer = DropoutExplorer(kind=kind, semantics="per-pass", rates=[rate], members_per_rate=2)
    _, seen = _observe(_wide(), explorer, X, rng)
    for s in seen[1:]:
        M = s[0]  # (60 samples, 4000 units)
        # each unit varies across samples, each sample across units
        assert (np.ptp(M, axis=0) > 1e-3).mean() > 0.99
        assert (np.ptp(M, axis=1) > 1e-3).all()
        if kind == "bernoulli":
            zero = np.abs(M) < 1e-6
            assert (zero | (np.abs(M - 1 / (1 - rate)) < 1e-5)).all()
            assert abs(zero.mean() - rate) < 0.01  # 240 000 elements
        else:
            assert abs(M.mean() - 1.0) < 0.01
            assert abs(M.std() - rate) < 0.01
    assert not np.array_equal(seen[1][0], seen[2][0])


def test_per_member_noise_is_the_same_for_every_sample(rng) -> None:
    # Identical rows get identical answers from a per-member draw, not from a per-pass one.
    X = np.repeat(rng.normal(size=(1, 5)), 60, axis=0)
    model = _wrap(_deep(), 5)
    member = DropoutExplorer(semantics="per-member", rates=[0.2], members_per_rate=2)
    passes = DropoutExplorer(semantics="per-pass", rates=[0.2], members_per_rate=2)
    fixed = member.explore(_context(model, X, rng)).output("holdout")
    fresh = passes.explore(_context(model, X, rng)).output("holdout")
    for m in (1, 2):
        assert np.ptp(fixed[m], axis=0).max() == 0.0
        assert np.ptp(fresh[m], axis=0).max() > 0.0


@pytest.mark.parametrize("layers", ["all", "hidden"])
def test_which_layers_are_perturbed(layers, rng) -> None:
    X = rng.normal(size=(60, 5))
    explorer = DropoutExplorer(kind="gaussian", rates=[0.3], members_per_rate=4, layers=layers)
    cands, seen = _observe(_deep(), explorer, X, rng)
    assert set(cands.params["dropout_layers"]) == {layers}
    for index in (0, 2, 4):
        np.testing.assert_allclose(seen[0][index], 1.0, atol=1e-5)  # reference: clean
    for s in seen[1:]:
        for index in (0, 2):  # the hidden layers: one non-trivial multiplier per unit
            assert np.abs(_per_unit_pattern(s[index]) - 1.0).max() > 1e-3
        last = _per_unit_pattern(s[4])
        if layers == "all":
            assert np.abs(last - 1.0).max() > 1e-3
        else:
            np.testing.assert_allclose(last, 1.0, atol=1e-5)


def test_perturbed_modules_all_and_hidden() -> None:
    mlp = _deep()
    linears = [mlp[0], mlp[2], mlp[4]]
    assert [id(m) for m in perturbed_modules(mlp)] == [id(m) for m in linears]
    assert [id(m) for m in perturbed_modules(mlp, layers="all")] == [id(m) for m in linears]
    assert [id(m) for m in perturbed_modules(mlp, layers="hidden")] == [id(m) for m in linears[:2]]
    conv = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 3, 2),
        nn.ReLU(),
        nn.Conv2d(3, 2, 3),
        nn.Flatten(),
    )
    assert [id(m) for m in perturbed_modules(conv, "hidden")] == [id(conv[1])]
    conv_head = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(12, 2)
    )
    assert [id(m) for m in perturbed_modules(conv_head, "all")] == [
        id(conv_head[1]),
        id(conv_head[3]),
    ]
    assert [id(m) for m in perturbed_modules(conv_head, "hidden")] == [id(conv_head[1])]
    assert perturbed_modules(nn.Sequential(nn.Linear(4, 2)), "hidden") == []
    with pytest.raises(InvalidInputError) as info:
        perturbed_modules(mlp, layers="output")
    assert str(info.value) == UNKNOWN_LAYERS.format(layers="output")


def test_hidden_layers_need_a_hidden_layer(rng) -> None:
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    logistic = TorchMLPClassifier((), epochs=2, random_state=0).fit(X, y)
    with pytest.raises(InvalidInputError) as info:
        DropoutExplorer(layers="hidden").explore(_context(logistic, X, rng))
    assert DropoutExplorer(layers="hidden").accepts(logistic) == NO_HIDDEN_LAYERS
    assert str(info.value) == NOT_ACCEPTED.format(
        explorer="dropout", model="TorchMLPClassifier", reason=NO_HIDDEN_LAYERS
    )
    # with layers="all" the single output layer is perturbed
    cands = DropoutExplorer(rates=[0.2], members_per_rate=2).explore(_context(logistic, X, rng))
    assert len(cands) == 3
    flat = _wrap(nn.Sequential(nn.Flatten()), 4)
    for layers in ("all", "hidden"):
        with pytest.raises(InvalidInputError) as info:
            DropoutExplorer(layers=layers).explore(_context(flat, X, rng))  # type: ignore[arg-type]
        assert str(info.value) == NOT_ACCEPTED.format(
            explorer="dropout", model="TorchMLPClassifier", reason=NO_LAYERS
        )


def test_unknown_dropout_layers_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        DropoutExplorer(layers="output")  # type: ignore[arg-type]
    assert str(info.value) == UNKNOWN_LAYERS.format(layers="output")
    assert str(info.value) == "Unknown dropout layers 'output'. Available: all, hidden."


def test_dropout_layers_are_described_and_recorded(surrogate, blobs, rng) -> None:
    X, _ = blobs
    for layers in ("all", "hidden"):
        explorer = DropoutExplorer(rates=[0.1], members_per_rate=2, layers=layers)  # type: ignore[arg-type]
        assert explorer.describe()["dropout_layers"] == layers
        params = explorer.explore(_context(surrogate, X, rng)).params
        assert list(params["dropout_layers"]) == [layers] * 3
    assert DropoutExplorer().describe()["dropout_layers"] == "all"


def test_dropout_hooks_are_removed(surrogate, blobs, rng) -> None:
    X, _ = blobs
    before = surrogate.predict_proba(X)
    for layers in ("all", "hidden"):
        DropoutExplorer(rates=[0.2], members_per_rate=2, layers=layers).explore(  # type: ignore[arg-type]
            _context(surrogate, X, rng)
        )
        np.testing.assert_array_equal(surrogate.predict_proba(X), before)
        assert all(not m._forward_hooks for m in surrogate.module_.modules())


def test_dropout_needs_a_torch_surrogate(blobs, rng) -> None:
    X, y = blobs
    gb = train_target("logistic", X, y)
    assert DropoutExplorer().accepts(gb) == NOT_TORCH
    with pytest.raises(InvalidInputError) as info:
        DropoutExplorer().explore(_context(gb, X, rng))
    _, inner = unwrap(gb)
    assert str(info.value) == NOT_ACCEPTED.format(
        explorer="dropout", model=type(inner).__name__, reason=NOT_TORCH
    )
    assert "retrain, ensemble or logistic explorer" in str(info.value)


def test_dropout_per_member_on_conv_layers_is_one_multiplier_per_channel(rng) -> None:
    module = _seeded(
        lambda: nn.Sequential(
            nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 64, 3), nn.Flatten(), nn.Linear(256, 2)
        )
    )
    X = rng.normal(size=(80, 16))
    cands, seen = _observe(module, DropoutExplorer(rates=[0.3], members_per_rate=4), X, rng)
    assert cands.output("evaluation").shape == (5, 30, 2)
    for s in seen[1:]:
        M = s[1]  # (80, 64 channels, 2, 2)
        per_channel = M.reshape(80, 64, 4).transpose(0, 2, 1).reshape(320, 64)
        pattern = _per_unit_pattern(per_channel)  # constant over samples and positions
        assert ((np.abs(pattern) < 1e-6) | (np.abs(pattern - 1 / 0.7) < 1e-5)).all()
        assert (np.abs(pattern) < 1e-6).any()
        assert (np.abs(pattern) > 1e-6).any()


@pytest.fixture
def retrain_setup(blobs, rng):
    X, y = blobs
    target = train_target("logistic", X, y)
    transcript = PoolAttack().run(AttackContext(LocalQueryAPI(target, budget=200), rng, pool=X))

    def refit(t, seed):
        return fit_surrogate(t, architecture="mlp", random_state=seed, epochs=3, min_steps=20)

    return X, transcript, refit


def _retrain_context(X, reference, transcript, refit, rng) -> ExplorationContext:
    return ExplorationContext(
        reference, {"holdout": X[:10], "evaluation": X[10:]}, transcript, refit, rng
    )


def test_retrain_explorer(retrain_setup) -> None:
    X, transcript, refit = retrain_setup
    reference = refit(transcript, 0)
    cands = RetrainExplorer(n_members=3, bootstrap=True).explore(
        _retrain_context(X, reference, transcript, refit, np.random.default_rng(5))
    )
    assert len(cands) == 4
    np.testing.assert_array_equal(cands.output("evaluation")[0], reference.predict_proba(X[10:]))
    drawn = np.random.default_rng(5).integers(0, SEED_HIGH, size=3)
    assert list(cands.params["seed"]) == [-1, *drawn.tolist()]
    assert not np.allclose(cands.output("evaluation")[1], cands.output("evaluation")[2])


def test_retrain_members_never_reuse_the_reference_seed(retrain_setup) -> None:
    X, transcript, refit = retrain_setup
    first = int(np.random.default_rng(77).integers(0, SEED_HIGH, size=3)[0])
    reference = refit(transcript, first)  # the rng's first draw is the reference's seed
    cands = RetrainExplorer(n_members=3).explore(
        _retrain_context(X, reference, transcript, refit, np.random.default_rng(77))
    )
    seeds = list(cands.params["seed"])[1:]
    assert first not in seeds
    assert len(set(seeds)) == 3
    for key in ("holdout", "evaluation"):
        P = cands.output(key)
        for m in (1, 2, 3):
            assert not np.array_equal(P[m], P[0])


class _ScriptedRng(np.random.Generator):
    """A Generator whose first integer draws are scripted, then drawn normally."""

    def __init__(self, script: list[int]) -> None:
        super().__init__(np.random.PCG64(0))
        self.script = list(script)

    def integers(self, low, high=None, size=None, **kwargs):  # type: ignore[override]
        if not self.script:
            return super().integers(low, high, size=size, **kwargs)
        count = 1 if size is None else int(np.prod(size))
        head, self.script = self.script[:count], self.script[count:]
        tail = super().integers(low, high, size=count - len(head), **kwargs)
        out = np.concatenate([np.asarray(head, dtype=np.int64), tail])
        return out[0] if size is None else out.reshape(size)


def test_retrain_seeds_redraw_the_reference_seed_and_duplicates(retrain_setup) -> None:
    X, transcript, refit = retrain_setup
    reference = refit(transcript, 4242)
    rng = _ScriptedRng([4242, 7, 7, 4242, 9])
    cands = RetrainExplorer(n_members=3).explore(
        _retrain_context(X, reference, transcript, refit, rng)
    )
    seeds = list(cands.params["seed"])
    assert seeds[:3] == [-1, 7, 9]
    assert seeds[3] not in (-1, 7, 9, 4242)
    P = cands.output("evaluation")
    for m in (1, 2, 3):
        assert not np.array_equal(P[m], P[0])


def test_retrain_seeds_follow_the_rng(retrain_setup) -> None:
    X, transcript, refit = retrain_setup
    reference = refit(transcript, 0)

    def seeds(seed: int) -> list[int]:
        stub = lambda _t, _s: reference  # noqa: E731 - outputs are not under test here
        cands = RetrainExplorer(n_members=5).explore(
            _retrain_context(X, reference, transcript, stub, np.random.default_rng(seed))
        )
        return list(cands.params["seed"])[1:]

    assert seeds(1) == seeds(1)
    assert seeds(1) != seeds(2)
    assert not set(seeds(1)) & set(range(1001, 1006))
    assert all(0 <= s < SEED_HIGH for s in seeds(1) + seeds(2))


def test_reference_seed() -> None:
    class Plain:
        pass

    assert reference_seed(TorchMLPClassifier((), random_state=7)) == 7
    assert reference_seed(TorchMLPClassifier((), random_state=np.int64(7))) == 7
    assert reference_seed(TorchMLPClassifier((), random_state=None)) == 0  # fit() seeds with 0
    assert reference_seed(Plain()) is None


def _toy_candidates() -> Candidates:
    # 3 candidates, 2 holdout rows, 3 selection rows (set-aside evaluation rows), 2 classes.
    hold = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8]],
            [[0.9, 0.1], [0.6, 0.4]],
            [[0.4, 0.6], [0.6, 0.4]],
        ]
    )
    ev = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]],
            [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]],
            [[0.1, 0.9], [0.9, 0.1], [0.3, 0.7]],
        ]
    )
    return Candidates(
        "toy", pd.DataFrame({"member": [0, 1, 2]}), {"holdout": hold, "selection": ev}
    )


def test_candidate_losses_hand_computed() -> None:
    target = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels_only = Answer(labels=np.array([0, 1]), scores=None, revealed=None, mode="labels")
    losses = candidate_losses(_toy_candidates(), holdout=labels_only, target_probabilities=target)
    np.testing.assert_allclose(losses["transcript"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(losses["transcript-loss"], losses["transcript"])  # labels only
    np.testing.assert_allclose(losses["test-fidelity"], [0.0, 1 / 3, 1.0])
    expected_ce0 = -np.mean(
        [
            0.8 * np.log(0.9) + 0.2 * np.log(0.1),
            0.3 * np.log(0.2) + 0.7 * np.log(0.8),
            0.6 * np.log(0.7) + 0.4 * np.log(0.3),
        ]
    )
    assert losses["test-loss"][0] == pytest.approx(expected_ce0)


def test_epsilon_filter_is_inclusive() -> None:
    losses = {"transcript": np.array([0.10, 0.15, 0.30, 0.101])}
    assert list(rashomon_set(losses, epsilon=0.0).members) == [0]
    assert list(rashomon_set(losses, epsilon=0.05).members) == [
        0,
        1,
        3,
    ]  # 0.15 = 0.10 + 0.05 included
    assert list(rashomon_set(losses, epsilon=0.2).members) == [0, 1, 2, 3]
    R = rashomon_set(losses, epsilon=0.05)
    assert R.size == 3
    assert R.reference_loss == 0.10


@pytest.mark.parametrize("eps", [-0.01, float("nan"), float("inf")])
def test_bad_epsilon(eps) -> None:
    with pytest.raises(InvalidInputError) as info:
        rashomon_set({"transcript": np.zeros(2)}, epsilon=eps)
    assert str(info.value) == BAD_EPSILON.format(epsilon=eps)


def test_unknown_criterion() -> None:
    with pytest.raises(InvalidInputError, match="Unknown Rashomon criterion 'auc'"):
        rashomon_set({"transcript": np.zeros(2)}, epsilon=0.1, criterion="auc")


def test_retrain_zero_perturbation_is_the_reference(retrain_setup) -> None:
    """Refitting with the reference's own seed on the same transcript reproduces it exactly —
    which is why members never reuse that seed (they would be copies). Chunks of one member
    concatenate to the same set."""
    X, transcript, refit = retrain_setup
    reference = refit(transcript, 11)
    again = refit(transcript, 11)
    np.testing.assert_array_equal(again.predict_proba(X), reference.predict_proba(X))
    context = _retrain_context(X, reference, transcript, refit, np.random.default_rng(3))
    whole = RetrainExplorer(n_members=3).explore(context)
    tiny = ExplorationContext(
        reference,
        {"holdout": X[:10], "evaluation": X[10:]},
        transcript,
        refit,
        np.random.default_rng(3),
        max_chunk_bytes=1,
    )
    chunks = list(RetrainExplorer(n_members=3).explore_chunks(tiny))
    assert [len(c) for c in chunks] == [1, 1, 1, 1]
    np.testing.assert_array_equal(
        np.concatenate([c.output("evaluation") for c in chunks]), whole.output("evaluation")
    )
