"""Universality: known answers (an SAE against a permuted copy of itself, against a random one), the CLI end
to end on tiny SAEs in tmp folders, and the inputs it refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from autointerp.analysis.universality import (
    UniversalityResult,
    load_pair,
    report_text,
    summarize_matches,
    universality,
)
from autointerp.cli import main
from autointerp.controls import random_init_subject
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.saelens_format import save_sae
from sae.subject.models import BUILTIN_HOOK, builtin_model_dir
from sae.unit_matching import UnitSet

TOKENS = 1024


def _sae(d_sae: int = 64, seed: int = 0, model_name: str = "builtin", hook: str = BUILTIN_HOOK) -> SparseAutoencoder:
    torch.manual_seed(seed)
    return SparseAutoencoder(SAEConfig(d_in=512, d_sae=d_sae, k=8, model_name=model_name, hook_name=hook))


def _permuted(sae: SparseAutoencoder) -> SparseAutoencoder:
    """The same features in another order."""
    perm = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(1))
    copy = SparseAutoencoder(sae.cfg)
    with torch.no_grad():
        copy.W_enc.copy_(sae.W_enc[:, perm])
        copy.b_enc.copy_(sae.b_enc[perm])
        copy.W_dec.copy_(sae.W_dec[perm])
        copy.b_dec.copy_(sae.b_dec)
    return copy


def _model_folder(tmp_path: Path, name: str) -> Path:
    """A copy of the shipped model in a folder of its own: another model name, the same weights."""
    folder = tmp_path / name
    shutil.copytree(builtin_model_dir(), folder)
    return folder


def test_an_sae_against_a_permuted_copy_of_itself_matches_every_feature(subject):
    sae = _sae()
    a, b = UnitSet("a", subject, BUILTIN_HOOK, sae), UnitSet("b", subject, BUILTIN_HOOK, _permuted(sae))
    result = universality(a, b, tokens=TOKENS, batch_size=8, progress=False)
    assert result.same_model and result.neurons == [] and result.tokens == TOKENS
    for summary in result.features + result.decoder_cosine:
        assert summary.median == pytest.approx(1.0, abs=1e-4)
        assert summary.median_ci95 == pytest.approx((1.0, 1.0), abs=1e-4)
        assert summary.fraction_twins == 1.0
    dead = result.features[0].n_dead  # features that never fire on these tokens, on both sides alike
    assert result.features[1].n_dead == dead and result.decoder_cosine[0].n_dead == 0


def test_two_random_saes_share_few_features(subject):
    a = UnitSet("a", subject, BUILTIN_HOOK, _sae(seed=0))
    b = UnitSet("b", subject, BUILTIN_HOOK, _sae(seed=1))
    result = universality(a, b, tokens=TOKENS, batch_size=8, progress=False)
    for summary in result.features:
        assert summary.median is not None and summary.median < 0.7
        assert summary.fraction_twins is not None and summary.fraction_twins < 0.1
    assert result.decoder_cosine[0].median is not None and result.decoder_cosine[0].median < 0.5


def test_neurons_of_a_trained_and_a_random_model_share_few_twins(subject):
    sae = _sae()
    other = random_init_subject(subject, seed=0)
    a, b = UnitSet("a", subject, BUILTIN_HOOK, sae), UnitSet("b", other, BUILTIN_HOOK, sae)
    result = universality(a, b, tokens=TOKENS, batch_size=8, progress=False)
    assert not result.same_model and result.decoder_cosine == []
    for summary in result.neurons:
        assert summary.n_units == 512
        assert summary.median is not None and summary.median < 0.9
        assert summary.fraction_twins is not None and summary.fraction_twins < 0.5


def test_summary_excludes_and_counts_dead_units():
    summary = summarize_matches(torch.tensor([0.95, float("nan"), 0.5, 0.99, float("nan")]), "x")
    assert (summary.n_units, summary.n_dead) == (5, 2)
    assert summary.median == pytest.approx(0.95)
    assert summary.fraction_twins == pytest.approx(2 / 3)
    empty = summarize_matches(torch.tensor([float("nan")]), "x")
    assert empty.median is None and empty.fraction_twins is None


def test_cli_compares_two_models_named_by_their_sae_folders(tmp_path, capsys):
    """B's SAE names a model folder (as `sae train --model DIR` writes it): that model is loaded, the
    neurons are compared too, and a copy of the shipped model matches it neuron for neuron."""
    model_b = _model_folder(tmp_path, "model-b")
    sae = _sae()
    save_sae(sae, tmp_path / "a")
    save_sae(_permuted(_sae(model_name=str(model_b))), tmp_path / "b")
    args = ["analyze", "universality", "--saes", str(tmp_path / "a"), str(tmp_path / "b"), "--tokens", str(TOKENS)]
    assert main([*args, "--json"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed)
    assert result["model_b"] == str(model_b.resolve()) and not result["same_model"]
    assert [s["label"] for s in result["neurons"]] == [
        "neurons A->B, activation correlation",
        "neurons B->A, activation correlation",
    ]
    for summary in result["features"] + result["neurons"]:
        assert summary["median"] == pytest.approx(1.0, abs=1e-4) and summary["fraction_twins"] == 1.0
    table = report_text(UniversalityResult.model_validate_json(printed))  # what the command prints without --json
    assert f"B: {tmp_path / 'b'} on {model_b.resolve()}" in table
    assert "| neurons A->B, activation correlation | 1.000 [1.000, 1.000] | 1.000 |" in table
    assert "| 0.46 |" in table and "| 0.72 |" in table


@pytest.mark.slow  # trains an SAE; the fast CLI test above loads a model named by its folder the same way
def test_a_model_trained_to_a_folder_is_named_by_it_in_the_sae(tmp_path):
    model = _model_folder(tmp_path, "subject")
    out = tmp_path / "sae"
    train = ["sae", "train", "--model", str(model), "--out", str(out), "--d-sae", "64", "--k", "8"]
    assert main([*train, "--tokens", "2048", "--batch-size", "512"]) == 0
    assert json.loads((out / "cfg.json").read_text())["metadata"]["model_name"] == str(model.resolve())
    a, b = load_pair(out, out)
    assert a.subject is b.subject and a.subject.name == str(model.resolve())


def _refusal(tmp_path: Path, capsys, a: SparseAutoencoder, b: SparseAutoencoder, *extra: str) -> str:
    save_sae(a, tmp_path / "a")
    save_sae(b, tmp_path / "b")
    assert main(["analyze", "universality", "--saes", str(tmp_path / "a"), str(tmp_path / "b"), *extra]) == 2
    return capsys.readouterr().err


def test_saes_on_other_hooks_or_sizes_are_refused(tmp_path, capsys):
    err = _refusal(tmp_path, capsys, _sae(), _sae(hook="blocks.0.mlp.fc_in"))
    assert "compare one hook" in err and "Traceback" not in err
    assert "dictionaries of one size" in _refusal(tmp_path, capsys, _sae(), _sae(d_sae=32))
    assert "--tokens must be positive" in _refusal(tmp_path, capsys, _sae(), _sae(), "--tokens", "0")


def test_models_with_other_tokenizers_or_missing_models_are_refused(tmp_path, capsys):
    model_b = _model_folder(tmp_path, "model-b")
    tokenizer = json.loads((model_b / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = (k for k, v in vocab.items() if v in (300, 301))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (model_b / "tokenizer.json").write_text(json.dumps(tokenizer))
    err = _refusal(tmp_path, capsys, _sae(), _sae(), "--model-b", str(model_b))
    assert "different tokenizers" in err
    err = _refusal(tmp_path, capsys, _sae(), _sae(model_name=str(tmp_path / "gone")))
    assert "does not exist" in err


def test_the_builtin_model_named_by_name_or_by_its_folder_is_loaded_once(tmp_path):
    save_sae(_sae(), tmp_path / "a")
    save_sae(_sae(seed=1), tmp_path / "b")
    a, b = load_pair(tmp_path / "a", tmp_path / "b", model_b=str(builtin_model_dir()))
    assert a.subject is b.subject
