"""`multisteal keys add` and `multisteal serve` from the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from multisteal.cli import app
from multisteal.service.store import open_store
from service_helpers import free_port, stop, wait_until_healthy

runner = CliRunner()


def test_keys_add_prints_a_key_once_and_stores_its_hash(tmp_path: Path) -> None:
    """Catches: the key stored in plain text, a key that does not authenticate, a budget or
    rate that does not reach the store, a duplicate name silently replacing a key."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    result = runner.invoke(
        app, ["keys", "add", "alice", "--budget", "500", "--rate", "2", "--db", url]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert len(key) >= 32
    with open_store(url) as store:
        info = store.authenticate(key)
        assert info is not None
        assert (info.name, info.budget, info.used, info.rate_per_second) == ("alice", 500, 0, 2.0)
        assert store.authenticate(key + "x") is None
    for path in tmp_path.iterdir():
        assert key.encode() not in path.read_bytes()
    assert "a new one was created" in result.stderr  # (the key alone is on stdout)
    assert result.stdout.strip() == key
    second = runner.invoke(app, ["keys", "add", "bob", "--budget", "5", "--db", url])
    assert "new one" not in second.stderr
    again = runner.invoke(app, ["keys", "add", "alice", "--budget", "5", "--db", url])
    assert again.exit_code != 0
    assert "alice" in again.output
    assert "Traceback" not in again.output


def test_keys_add_refuses_a_bad_store_url(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "add", "bob", "--budget", "5", "--db", "mysql://x"])
    assert result.exit_code != 0
    assert "sqlite:///" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_folder_that_is_not_a_target(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code != 0
    assert "not a saved target" in result.output


def test_serve_from_the_command_line_with_workers(tmp_path: Path) -> None:
    """`multisteal serve TARGET --workers 2` (the default store beside the target), a key from
    `multisteal keys add`, and the client: answers equal the target's own, the budget counts.
    Catches: serve not passing its options to the workers, a default store elsewhere than the
    keys command's, a key that does not reach the workers."""
    import subprocess
    import sys

    import numpy as np

    from multisteal.data import load_dataset
    from multisteal.data.inputs import input_spec_of
    from multisteal.models import save_model
    from multisteal.models.zoo import make_pipeline
    from multisteal.service.client import HTTPQueryAPI

    ds = load_dataset("german_credit")
    spec = input_spec_of(ds)
    model = make_pipeline("logistic", spec, random_state=0).fit(ds.features, ds.y)
    target = save_model(model, tmp_path / "run" / "target", metadata={"input_spec": spec.to_dict()})
    port = free_port()
    command = [sys.executable, "-c", "from multisteal.cli import main; main()", "serve"]
    command += [str(target), "--port", str(port), "--workers", "2", "--output", "top-k"]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, tmp_path / "serve.log")
        db = f"sqlite:///{tmp_path / 'run' / 'service.db'}"
        added = runner.invoke(app, ["keys", "add", "auditor", "--budget", "40", "--db", db])
        assert added.exit_code == 0, added.output
        with HTTPQueryAPI(url, added.output.strip()) as api:
            assert api.output_mode == "top-k"
            rows = ds.features.iloc[:30]
            answer = api.query(rows)
            np.testing.assert_array_equal(answer.labels, model.predict(rows))
            assert api.ledger.remaining == 10
    finally:
        stop(process)
        log.close()
