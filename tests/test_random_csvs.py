"""Property: on any small CSV, an audit either succeeds or fails with one of its own messages."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from multisteal.cli import app

runner = CliRunner()
QUICK = [
    "--budget",
    "20",
    "--target",
    "logistic",
    "--surrogate",
    "logistic",
    "--explorer",
    "retrain",
    "--retrain-members",
    "1",
    "--baseline-members",
    "0",
    "--no-explorer-floor",
    "--fairness-bootstrap",
    "0",
    "--min-group-size",
    "2",
    "--split",
    "0.4,0.4,0.2",
    "--threads",
    "1",
    "--quiet",
]
NAMES = st.text(alphabet=string.ascii_letters + "éüßλ漢 _-", min_size=1, max_size=8).filter(
    lambda name: name.strip() == name and name not in ("y", "g")
)
CELLS = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-3, 3, allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "b", "ç", "unknown", "1.5", "inf", ""]),
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, str, str | None, list[str], bool]:
    n = draw(st.integers(0, 80))
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    data: dict[str, list[object]] = {}
    for name in names:
        kind = draw(st.sampled_from(["numeric", "text", "mixed"]))
        cells = {
            "numeric": st.floats(-3, 3, allow_nan=False, allow_infinity=False),
            "text": st.sampled_from(["a", "b", "c", "ç"]),
            "mixed": CELLS,
        }[kind]
        data[name] = draw(st.lists(cells, min_size=n, max_size=n))
    data["y"] = draw(st.lists(st.sampled_from(["no", "yes", "maybe"]), min_size=n, max_size=n))
    data["g"] = draw(st.lists(st.sampled_from(["f", "m", None]), min_size=n, max_size=n))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    # The user names an encoding (maybe the wrong one), or not.
    told = draw(st.sampled_from([None, encoding, encoding, "utf-8", "latin-1", "utf-16"]))
    column = names[0]
    options = draw(
        st.sampled_from(
            [
                [],
                ["--numerical", column],
                ["--categorical", column],
                ["--max-categories", "2"],
                ["--numerical", "y"],
            ]
        )
    )
    ragged = draw(st.sampled_from([False, False, False, True]))
    return pd.DataFrame(data), encoding, told, options, ragged


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames())
def test_any_small_csv_succeeds_or_fails_with_a_message(
    case: tuple[pd.DataFrame, str, str | None, list[str], bool],
) -> None:
    frame, encoding, told, options, ragged = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        try:
            frame.to_csv(path, index=False, encoding=encoding)
            if ragged:  # one row with a field too many
                with path.open("a", encoding=encoding) as handle:
                    handle.write(",".join(["1"] * (frame.shape[1] + 1)) + "\n")
        except UnicodeEncodeError:
            return  # the text cannot be written in this encoding at all: nothing to audit
        args = ["audit", "--csv", str(path), "--label", "y", "--sensitive", "g", *QUICK, *options]
        if told is not None:
            args += ["--encoding", told]
        result = runner.invoke(app, [*args, "--out", str(Path(folder) / "run")])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception),
        result.output,
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.output.startswith("Error: "), result.output
