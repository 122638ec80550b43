"""Every bad input a user can give, through the real command line: exit status 2, one `error:` line
naming the problem, no traceback, and nothing already on disk changed (nor anything new written,
since each is refused before work starts)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import cli_in_process

BUILTIN_WIDTH = 512  # blocks.0.mlp.act of the built-in subject model


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def assert_refused(root: Path, args: list[str], *needles: str) -> None:
    """Run the CLI on files under `root`: one clean error naming the problem, and `root` unchanged."""
    before = _snapshot(root)
    result = cli_in_process(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _snapshot(root) == before


@pytest.fixture
def sae_folder(tmp_path: Path) -> Path:
    """A valid (untrained) SAE folder for the built-in model, to damage."""
    from sae.autoencoder import SAEConfig, SparseAutoencoder
    from sae.saelens_format import save_sae

    folder = tmp_path / "sae"
    save_sae(SparseAutoencoder(SAEConfig(d_in=BUILTIN_WIDTH, d_sae=16, k=4)), folder)
    return folder


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog with one source of fake units, explained and scored."""
    from autointerp.store import open_store
    from tests.fake_catalog import make_catalog

    entries = make_catalog(n_neurons=3, n_features=3)
    path = tmp_path / "catalog.db"
    with open_store(path) as store:
        store.put_source("src", {"harvest_complete": True})
        store.put_units("src", [e.harvest for e in entries])
        store.put_explanations("src", [x for e in entries for x in e.explanations])
        store.put_scores("src", [s for e in entries for s in e.scores])
    return path


# --- run configs ------------------------------------------------------------------------------------

CONFIGS = {
    "empty": ("", "sets nothing"),
    "device": ('[subject]\ndevice = "tpu"\n', "unknown device 'tpu'"),
    "dtype": ('[subject]\ndtype = "int8"\n', "subject.dtype"),
    "builtin_half": ('[subject]\ndtype = "float16"\n', "float32 only"),
    "model_path": ('[subject]\nmodel = "/nonexistent"\n', "/nonexistent does not exist"),
    "first_without_n": ('[units]\nmode = "first"\n', "needs n"),
    "random_zero": ('[units]\nmode = "random"\nn = 0\n', "units.n"),
    "n_tokens": ("[harvest]\nn_tokens = -100\n", "harvest.n_tokens"),
    "k_zero": ("[sae.train]\nk = 0\n", "sae.train.k"),
    "k_above_d_sae": ("[sae.train]\nd_sae = 16\nk = 32\n", "k (32) must be at most d_sae (16)"),
    "d_sae": ("[sae.train]\nd_sae = -5\n", "sae.train.d_sae"),
    "tokens": ("[sae.train]\ntotal_tokens = 0\n", "sae.train.total_tokens"),
    "concurrency": ("[label]\nconcurrency = 0\n", "label.concurrency"),
    "max_cost": ("[label]\nmax_cost = -1\n", "label.max_cost"),
    "sae_path": ('[sae]\npath = "/nonexistent"\n', "not a SAELens-layout SAE folder"),
    "misspelt": ("[harvest]\nn_tokenz = 5\n", "n_tokenz"),
    "harvest_corpus": ('[harvest]\ncorpus = "other.jsonl"\n', "harvest.corpus is 'other.jsonl' but corpus is 'stdlib'"),
    "train_corpus": (
        'corpus = "a.jsonl"\n[sae.train]\ncorpus = "stdlib"\n',
        "sae.train.corpus is 'stdlib' but corpus is 'a.jsonl'",
    ),
    "not_toml": ("[harvest\n", "cannot parse"),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_bad_run_config(tmp_path: Path, name: str) -> None:
    text, needle = CONFIGS[name]
    config = tmp_path / "run.toml"
    config.write_text(text)
    assert_refused(tmp_path, ["run", str(config), "--out", str(tmp_path / "out")], needle)


# --- SAE folders ------------------------------------------------------------------------------------


def _damage_weights(folder: Path, how: str) -> None:
    weights = folder / "sae_weights.safetensors"
    data = {"truncated": weights.read_bytes()[:100], "empty": b"", "random": os.urandom(4000)}[how]
    weights.write_bytes(data)


def _edit_cfg(folder: Path, **fields) -> None:
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, **fields}))


SAE_DAMAGE = {
    "truncated": (lambda f: _damage_weights(f, "truncated"), "not a readable safetensors file"),
    "empty": (lambda f: _damage_weights(f, "empty"), "not a readable safetensors file"),
    "random": (lambda f: _damage_weights(f, "random"), "not a readable safetensors file"),
    "cfg_list": (lambda f: (f / "cfg.json").write_text("[1, 2]"), "must hold a JSON object"),
    "cfg_not_json": (lambda f: (f / "cfg.json").write_text("{"), "not valid JSON"),
    "d_in_text": (lambda f: _edit_cfg(f, d_in="abc"), "d_in"),
    "k_zero": (lambda f: _edit_cfg(f, k=0), "k"),
    "k_above_d_sae": (lambda f: _edit_cfg(f, k=100), "k (100) must be at most d_sae (16)"),
    "no_weights": (lambda f: (f / "sae_weights.safetensors").unlink(), "not a SAELens-layout SAE folder"),
}


@pytest.mark.parametrize("name", SAE_DAMAGE)
def test_damaged_sae_folder(tmp_path: Path, sae_folder: Path, name: str) -> None:
    damage, needle = SAE_DAMAGE[name]
    damage(sae_folder)
    assert_refused(tmp_path, ["sae", "eval", str(sae_folder), "--tokens", "1000"], needle)


OUTPUT_DAMAGE = {
    "checkpoint.pt": (b"PK\x03\x04 not a whole checkpoint", "checkpoint.pt is damaged"),
    "training.json": (b"{", "training.json is not valid JSON"),
    "metrics.json": (b'["a list"]', "metrics.json must hold a JSON object"),
}


@pytest.mark.parametrize("name", OUTPUT_DAMAGE)
def test_damaged_file_in_a_run_folder(tmp_path: Path, name: str) -> None:
    data, needle = OUTPUT_DAMAGE[name]
    (tmp_path / "out" / "sae").mkdir(parents=True)
    (tmp_path / "out" / "sae" / name).write_bytes(data)
    config = tmp_path / "run.toml"
    config.write_text('corpus = "stdlib"\n')
    assert_refused(tmp_path, ["run", str(config), "--out", str(tmp_path / "out")], needle)


def test_damaged_checkpoint_for_sae_train(tmp_path: Path) -> None:
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "checkpoint.pt").write_bytes(b"\x80\x02 truncated")
    args = ["sae", "train", "--out", str(tmp_path / "sae"), "--d-sae", "16", "--k", "4"]
    assert_refused(tmp_path, args, "checkpoint.pt is damaged")


# --- output paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["demo", "sae-train", "harvest", "export", "compare"])
def test_output_path_that_is_a_file(tmp_path: Path, catalog: Path, command: str) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    args = {
        "demo": ["demo", "--out", str(a_file)],
        "sae-train": ["sae", "train", "--out", str(a_file)],
        "harvest": ["harvest", "--db", str(a_file / "x.db")],
        "export": ["export", str(catalog), "--out", str(a_file)],
        "compare": ["compare", str(catalog), "--out", str(a_file)],
    }[command]
    assert_refused(tmp_path, args, str(a_file), "is a file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder(tmp_path: Path, catalog: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_refused(tmp_path, ["export", str(catalog), "--out", str(locked / "html")], "cannot write into")
    finally:
        locked.chmod(0o755)


# --- catalogs ---------------------------------------------------------------------------------------


def test_export_refuses_a_foreign_sqlite_file(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE units (name TEXT)")
    conn.execute("INSERT INTO units VALUES ('theirs')")
    conn.commit()
    conn.close()
    assert_refused(tmp_path, ["export", str(foreign)], "not an autointerp catalog")


def test_bad_unit_selections(tmp_path: Path, catalog: Path) -> None:
    assert_refused(tmp_path, ["explain", "--db", str(catalog), "--units", "first:x"], "--units")
    assert_refused(tmp_path, ["explain", "--db", str(catalog), "--units", "first:0"], "n")
    assert_refused(tmp_path, ["explain", "--db", str(catalog), "--concurrency", "0"], "concurrency")


def test_bad_device_and_model_on_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    assert_refused(tmp_path, ["harvest", "--db", db, "--device", "tpu"], "unknown device 'tpu'")
    assert_refused(tmp_path, ["harvest", "--db", db, "--model", "/nonexistent"], "/nonexistent does not exist")
    assert_refused(tmp_path, ["harvest", "--db", db, "--tokens", "-100"], "n_tokens")
