"""Harvest and SAE training split over processes (torchrun, gloo on CPU) against one process.

Fast: the binary-tree reduction plan, and the sharded harvest's batches merged in one process.
With two real processes: data-parallel training steps against one process on the same global
batches, and (slow) `torchrun -m autointerp harvest` against the single-process catalog."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from autointerp.cli import main
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.distributed import Shard, tree_partners
from sae.harvest import (
    HarvestConfig,
    KindHarvester,
    column_subset,
    harvest_units,
    hook_neurons,
    unit_batches,
    unit_records,
)
from sae.subject.models import BUILTIN_HOOK, SubjectModel
from sae.training import SAETrainConfig, make_optimizer, training_step

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("world", range(1, 10))
def test_tree_reduction_reaches_rank_0_once_from_every_rank(world: int) -> None:
    plans = {rank: tree_partners(Shard(rank, world)) for rank in range(world)}
    sends = [(rank, peer) for rank, plan in plans.items() for action, peer in plan if action == "send"]
    recvs = sorted((peer, rank) for rank, plan in plans.items() for action, peer in plan if action == "recv")
    assert sorted(sends) == recvs  # every send has its receive
    assert sorted(rank for rank, _ in sends) == list(range(1, world))  # all but rank 0 send, once
    for plan in plans.values():  # a rank sends last, after everything it receives
        assert all(action == "recv" for action, _ in plan[:-1])


def test_sharded_batches_merge_to_the_single_pass(subject: SubjectModel) -> None:
    """Two shards' harvesters (every other batch each), merged, give the records one pass gives."""
    cfg = HarvestConfig(
        n_tokens=64 * 8 * 3,
        batch_size=8,
        n_top=3,
        n_top_score=2,
        reservoir=4,
        n_random=2,
        n_silent=2,
        n_hard_negative=0,
        n_logit_tokens=0,
        example_length=None,
    )
    units = {"neuron": column_subset(hook_neurons, list(range(48)))}
    one = harvest_units(subject, BUILTIN_HOOK, cfg, units)["neuron"]
    shards = []
    for rank in (0, 1):
        h = KindHarvester(48, cfg, 64, subject.device)
        for _, tokens, ids, is_score, acts, generator in unit_batches(
            subject, BUILTIN_HOOK, cfg, units, cfg.n_tokens, "harvest", shard=Shard(rank, 2)
        ):
            h.update(acts["neuron"], ids, is_score, generator)
        shards.append(h)
    assert int(shards[0].state.stats.tokens_seen) == 2 * 8 * 64  # batches 0 and 2 of 0, 1, 2
    shards[0].merge(shards[1])
    records = [r.model_dump() for r in unit_records("neuron", shards[0], subject, BUILTIN_HOOK)]
    assert records == [r.model_dump() for r in unit_records("neuron", one, subject, BUILTIN_HOOK)]


# --- data-parallel SAE training steps: two gloo processes against one ------------------------------

D_IN, D_SAE, BATCH, STEPS = 16, 64, 32, 4


def _train_steps(architecture: str, shard: Shard, steps: int = STEPS) -> dict[str, torch.Tensor]:
    """`steps` steps on fixed global batches, this process taking its rows of each."""
    cfg = SAETrainConfig(
        architecture=architecture, d_sae=D_SAE, k=4, batch_size=BATCH, total_tokens=BATCH * STEPS, aux_k=8, lr=1e-2
    )
    torch.manual_seed(0)
    batches = torch.randn(STEPS, BATCH, D_IN) * torch.linspace(0.5, 2, D_IN)
    sae = SparseAutoencoder(SAEConfig(architecture=architecture, d_in=D_IN, d_sae=D_SAE, k=4))
    opt = make_optimizer(sae, cfg)
    dead = torch.arange(D_SAE) % 3 == 0  # AuxK runs on a third of the latents
    for step, x in enumerate(batches[:steps]):
        training_step(sae, opt, x.chunk(shard.world)[shard.rank], dead, cfg, step, shard=shard)
    return {name: t.detach().clone() for name, t in sae.state_dict().items()}


ARCHITECTURES = ("topk", "relu_l1")


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save({a: _train_steps(a, Shard(rank, world)) for a in ARCHITECTURES}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes importing torch: seconds before the first step
def test_data_parallel_steps_match_one_process(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for architecture in ARCHITECTURES:
        expected = _train_steps(architecture, Shard())
        for rank in (0, 1):
            got = torch.load(tmp_path / f"rank{rank}.pt")[architecture]
            for name, value in expected.items():
                torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=f"{architecture} {name}")
        start = _train_steps(architecture, Shard(), steps=0)
        assert not torch.allclose(start["W_enc"], expected["W_enc"], rtol=1e-3, atol=1e-4)  # the steps moved it


# --- the command under torchrun -----------------------------------------------------------------------


def _tables(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5").fetchall()
            for table in ("units", "examples")
        } | {"windows": conn.execute("SELECT * FROM windows ORDER BY 1, 2").fetchall()}


@pytest.mark.slow
def test_torchrun_harvest_equals_one_process(tmp_path: Path) -> None:
    args = ["harvest", "--tokens", str(64 * 64 * 3), "--top", "5"]  # three batches: ranks read 2 and 1
    assert main([*args, "--db", str(tmp_path / "one" / "catalog.db")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "autointerp", *args, "--db", str(tmp_path / "two" / "catalog.db")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("harvested source") == 1  # rank 0 alone reports (and writes)
    one, two = _tables(tmp_path / "one" / "catalog.db"), _tables(tmp_path / "two" / "catalog.db")
    assert len(one["units"]) == 512 and len(one["windows"]) == 192
    assert one == two


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["export", str(tmp_path / "catalog.db")]) == 2
    assert "under torchrun only harvest and sae train" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_sae_training_keeps_processes_in_step_and_rank_0_saves(tmp_path: Path) -> None:
    out = tmp_path / "sae"
    command = [
        *[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        *["-m", "autointerp", "sae", "train", "--out", str(out), "--d-sae", "64", "--k", "4"],
        *["--tokens", "4096", "--batch-size", "256"],
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(2):  # the second run finds the training done
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("saved SAE") == 1
    states = [torch.load(out / f"checkpoint.rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    assert states[0]["step"] == states[1]["step"] == 16
    for name, value in states[0]["sae"].items():
        assert torch.equal(value, states[1]["sae"][name]), name
    assert not torch.equal(states[0]["buffer"]["rows"], states[1]["buffer"]["rows"])  # each read its own batches
    assert (out / "sae_weights.safetensors").exists()
