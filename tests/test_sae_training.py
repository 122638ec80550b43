"""SAE training on the built-in model (it learns; checkpoints resume; foreign checkpoints are refused)
and `evaluate_sae` against brute-force numbers on the same held-out windows."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sae.activation_buffer import ShufflingBuffer
from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.corpus import open_corpus, select_split
from sae.errors import UserError
from sae.metrics import evaluate_sae
from sae.saelens_format import WEIGHTS_FILE, load_sae
from sae.streaming import ActivationBatch, token_batches
from sae.subject.models import BUILTIN_HOOK, SubjectModel
from sae.training import CHECKPOINT, SAETrainConfig, train_sae, uses_bf16_encoder

EVAL_TOKENS = 1024
ROOT = Path(__file__).resolve().parents[1]


def small_config(steps: int, **changes) -> SAETrainConfig:
    """Tiny but real settings: 128-token batches from a 1024-token shuffling buffer."""
    base = {
        "d_sae": 256,
        "k": 16,
        "batch_size": 128,
        "total_tokens": 128 * steps,
        "buffer_tokens": 1024,
        "subject_batch_size": 8,
        "checkpoint_every": 4,
        "dead_after_tokens": 2000,
        "aux_k": 64,
        "lr": 4e-3,
    }
    return SAETrainConfig(**{**base, **changes})


class Killed(Exception):
    """Stands for the process dying in the middle of a run."""


def counting_subject(subject: SubjectModel, die_after: int | None = None) -> tuple[SubjectModel, list[int]]:
    """The same model, counting its forward passes (and failing after `die_after` of them)."""
    calls: list[int] = []

    def logits_fn(model, tokens):
        calls.append(tokens.shape[0])
        if die_after is not None and len(calls) > die_after:
            raise Killed
        return subject.logits_fn(model, tokens)

    return dataclasses.replace(subject, logits_fn=logits_fn), calls


@pytest.fixture(scope="module")
def trained(subject: SubjectModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int]:
    """A 16-step topk run: (its folder, its summary, how many forward passes it took)."""
    out = tmp_path_factory.mktemp("sae_topk")
    model, calls = counting_subject(subject)
    return out, train_sae(model, BUILTIN_HOOK, small_config(16), out), len(calls)


def test_training_lowers_heldout_fvu(subject: SubjectModel, trained, tmp_path: Path) -> None:
    folder, summary, _ = trained
    assert summary["steps"] == 16 and summary["tokens"] == 16 * 128
    one_step = tmp_path / "one_step"
    train_sae(subject, BUILTIN_HOOK, small_config(1), one_step)
    fvu_trained = evaluate_sae(subject, load_sae(folder, 512), BUILTIN_HOOK, max_tokens=EVAL_TOKENS)[0].fvu
    fvu_one_step = evaluate_sae(subject, load_sae(one_step, 512), BUILTIN_HOOK, max_tokens=EVAL_TOKENS)[0].fvu
    assert fvu_trained < 0.85 * fvu_one_step, (fvu_trained, fvu_one_step)
    sae = load_sae(folder, 512)
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 16 and sae.cfg.hook_name == BUILTIN_HOOK
    torch.testing.assert_close(sae.W_dec.norm(dim=1) * summary["input_scale"], torch.ones(256))


def test_finished_checkpoint_rebuilds_identical_weights(subject: SubjectModel, trained, tmp_path: Path) -> None:
    folder, _, _ = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / CHECKPOINT).write_bytes((folder / CHECKPOINT).read_bytes())
    model, calls = counting_subject(subject)
    summary = train_sae(model, BUILTIN_HOOK, small_config(16), copy)
    assert summary["steps"] == 16
    first, again = load_file(str(folder / WEIGHTS_FILE)), load_file(str(copy / WEIGHTS_FILE))
    assert first.keys() == again.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), name
    assert len(calls) <= 4, "a finished run reads only what fills the buffer once, then saves"


def test_killed_run_resumes_from_its_last_checkpoint(subject: SubjectModel, trained, tmp_path: Path) -> None:
    _, _, fresh_calls = trained
    cfg = small_config(16)
    out = tmp_path / "killed"
    dying, _ = counting_subject(subject, die_after=fresh_calls - 2)
    with pytest.raises(Killed):
        train_sae(dying, BUILTIN_HOOK, cfg, out)
    saved = torch.load(out / CHECKPOINT, weights_only=False)
    assert 0 < saved["step"] < 16 and saved["step"] % cfg.checkpoint_every == 0
    assert not (out / WEIGHTS_FILE).exists()

    resumed_model, resumed_calls = counting_subject(subject)
    summary = train_sae(resumed_model, BUILTIN_HOOK, cfg, out)
    assert summary["steps"] == 16
    assert torch.load(out / CHECKPOINT, weights_only=False)["step"] == 16
    assert len(resumed_calls) < fresh_calls, "the resumed run skips the windows already consumed"
    assert load_sae(out, 512).W_enc.shape == (512, 256)


# The child trains small_config(16) and SIGKILLs itself (no cleanup, no atexit) at forward pass N,
# with as many threads as the parent (an earlier test may have changed its count).
KILLED_CHILD = """
import dataclasses, os, signal, sys
from pathlib import Path
import torch
from sae.subject.models import BUILTIN_HOOK, load_subject
torch.set_num_threads(int(sys.argv[4]))  # the parent's: sums split over other thread counts round otherwise
from sae.training import SAETrainConfig, train_sae
subject = load_subject("builtin")
calls = []
def logits_fn(model, tokens):
    calls.append(1)
    if len(calls) > int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return subject.logits_fn(model, tokens)
cfg = SAETrainConfig.model_validate_json(sys.argv[3])
train_sae(dataclasses.replace(subject, logits_fn=logits_fn), BUILTIN_HOOK, cfg, Path(sys.argv[1]))
"""


def test_kill_9_then_resume_gives_the_uninterrupted_weights(subject: SubjectModel, trained, tmp_path: Path) -> None:
    """Killed mid-run by SIGKILL with the buffer half served, resumed in a new process state: every
    saved tensor equals the uninterrupted run's bit for bit, and so does the summary's running FVU."""
    folder, summary, fresh_calls = trained
    cfg = small_config(16)
    out = tmp_path / "killed"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_CHILD,
            str(out),
            str(fresh_calls - 2),
            cfg.model_dump_json(),
            str(torch.get_num_threads()),
        ],
        check=False,
        cwd=ROOT,
    )
    assert child.returncode == -signal.SIGKILL
    saved = torch.load(out / CHECKPOINT, weights_only=False)
    assert 0 < saved["step"] < 16 and saved["buffer"]["served"] > 0, "killed between refills"
    assert not (out / WEIGHTS_FILE).exists()
    torch.manual_seed(12345)  # a resumed process starts with other RNG states; the checkpoint restores them
    resumed = train_sae(subject, BUILTIN_HOOK, cfg, out)
    first, again = load_file(str(folder / WEIGHTS_FILE)), load_file(str(out / WEIGHTS_FILE))
    assert first.keys() == again.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), (name, float((first[name] - again[name]).abs().max()))
    assert resumed["final_fvu"] == summary["final_fvu"] and resumed["final_l0"] == summary["final_l0"]


def test_checkpoint_without_format_resumes_the_old_way_with_a_warning(
    subject: SubjectModel, trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, _, _ = trained
    old = torch.load(folder / CHECKPOINT, weights_only=False)
    v1 = {key: old[key] for key in ("config", "sae", "optimizer", "scale", "tokens_since_fired")}
    v1 |= {"step": 12, "windows_consumed": old["buffer"]["windows_consumed"]}
    (tmp_path / "v1").mkdir()
    torch.save(v1, tmp_path / "v1" / CHECKPOINT)
    with caplog.at_level(logging.WARNING, logger="sae.training"):
        summary = train_sae(subject, BUILTIN_HOOK, small_config(16), tmp_path / "v1")
    assert summary["steps"] == 16
    assert "predates resumable checkpoints" in caplog.text and "from step 12" in caplog.text


def test_checkpoint_from_other_settings_is_refused(subject: SubjectModel, trained, tmp_path: Path) -> None:
    folder, _, _ = trained
    other = tmp_path / "other"
    other.mkdir()
    (other / CHECKPOINT).write_bytes((folder / CHECKPOINT).read_bytes())
    with pytest.raises(UserError, match="written with other settings"):
        train_sae(subject, BUILTIN_HOOK, small_config(16, d_sae=128), other)


@pytest.mark.parametrize("architecture", ["relu_l1", "batchtopk"])
def test_other_architectures_train_and_load(subject: SubjectModel, architecture: str, tmp_path: Path) -> None:
    cfg = small_config(
        4, architecture=architecture, resample_steps=[2], dead_after_tokens=100, l1_coefficient=1.0, buffer_tokens=256
    )
    summary = train_sae(subject, BUILTIN_HOOK, cfg, tmp_path)
    sae = load_sae(tmp_path, 512)
    assert summary["steps"] == 4
    if architecture == "batchtopk":  # saved as SAELens saves it: a jumprelu with one shared threshold
        assert sae.cfg.architecture == "jumprelu"
        assert sae.threshold.shape == (256,) and (sae.threshold == sae.threshold[0]).all() and sae.threshold[0] > 0
    else:
        assert sae.cfg.architecture == "relu_l1"
    assert np.isfinite(summary["final_fvu"]) and summary["final_l0"] > 0
    x = torch.randn(8, 512)
    assert sae(x).shape == x.shape


def test_encoder_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert not uses_bf16_encoder(SAETrainConfig(), cpu), "fp32 unless asked"
    assert uses_bf16_encoder(SAETrainConfig(encoder_precision="bfloat16"), cpu)
    assert not uses_bf16_encoder(SAETrainConfig(architecture="batchtopk", encoder_precision="auto"), cpu)
    with pytest.raises(UserError, match="for topk SAEs, not relu_l1"):
        uses_bf16_encoder(SAETrainConfig(architecture="relu_l1", encoder_precision="bfloat16"), cpu)


# --- the shuffling buffer --------------------------------------------------------------------------------


def labelled_stream(n_windows: int, ctx: int, bos_every: int) -> tuple[list[ActivationBatch], set[int]]:
    """Blocks whose activation rows carry their own row number, with a BOS token every `bos_every` rows."""
    items, text_rows = [], set()
    for w in range(n_windows):
        rows = torch.arange(w * ctx, (w + 1) * ctx)
        tokens = torch.where(rows % bos_every == 0, 0, 7)[None]
        items.append(ActivationBatch(w, tokens, rows.float()[None, :, None].expand(1, ctx, 3).clone()))
        text_rows |= {int(r) for r in rows if r % bos_every}
    return items, text_rows


@pytest.mark.parametrize("capacity", [8, 9, 16])
def test_buffer_hands_out_each_text_row_once_even_from_blocks_larger_than_itself(capacity: int) -> None:
    items, text_rows = labelled_stream(n_windows=6, ctx=11, bos_every=5)
    buffer = ShufflingBuffer(capacity, batch_size=2, seed=0)
    batches = list(buffer.batches(iter(items), bos_id=0))  # kept all at once: none may be overwritten
    rows = torch.cat(batches)
    assert all(b.shape == (2, 3) for b in batches)
    assert (rows == rows[:, :1]).all(), "rows stay whole"
    handed = rows[:, 0].long().tolist()
    assert len(handed) == len(set(handed)) and set(handed) <= text_rows
    half = capacity // 2
    refills = 1 + (len(text_rows) - capacity) // half  # each refill after the first takes `half` new rows
    assert len(handed) == refills * (half // 2 * 2)
    assert buffer.windows_consumed == 6
    assert handed != sorted(handed), "shuffled"


def test_buffer_state_continues_the_same_batches_from_any_point() -> None:
    items, _ = labelled_stream(n_windows=6, ctx=11, bos_every=5)
    whole = list(ShufflingBuffer(9, batch_size=2, seed=4).batches(iter(items), bos_id=0))
    for stop in range(1, len(whole)):
        buffer = ShufflingBuffer(9, batch_size=2, seed=4)
        head = buffer.batches(iter(items), bos_id=0)
        got = [next(head) for _ in range(stop)]
        state = buffer.state_dict()
        again = ShufflingBuffer(9, batch_size=2, seed=99)  # its own seed is overridden by the state
        again.load_state_dict(state, torch.device("cpu"))
        got += list(again.batches(iter(items[state["windows_consumed"] :]), bos_id=0))
        assert len(got) == len(whole) and all(torch.equal(a, b) for a, b in zip(got, whole)), stop


# --- metrics -----------------------------------------------------------------------------------------


def shifted_identity_sae(width: int, shift: float = 1.0) -> SparseAutoencoder:
    """x_c = x + shift > 0 everywhere (GELU ≥ -0.17), topk with k = width keeps it all: x̂ = x exactly."""
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=width, d_sae=width, k=width))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(width))
        sae.W_dec.copy_(torch.eye(width))
        sae.b_enc.zero_()
        sae.b_dec.fill_(-shift)
    return sae


def random_sae(width: int, d_sae: int = 384, k: int = 8) -> SparseAutoencoder:
    torch.manual_seed(3)
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=width, d_sae=d_sae, k=k))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.05)
    return sae


def test_perfect_reconstruction_recovers_all_the_loss(subject: SubjectModel) -> None:
    metrics, density = evaluate_sae(subject, shifted_identity_sae(512), BUILTIN_HOOK, max_tokens=EVAL_TOKENS)
    assert metrics.fvu < 1e-9
    assert metrics.loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert metrics.ce_with_reconstruction == pytest.approx(metrics.ce_clean, abs=1e-5)
    assert metrics.l0 == 512 and metrics.dead_fraction == 0 and metrics.dense_fraction == 1
    np.testing.assert_array_equal(density, np.ones(512))


@torch.no_grad()
def test_metrics_match_brute_force_over_the_same_windows(subject: SubjectModel) -> None:
    sae = random_sae(512)
    metrics, density = evaluate_sae(subject, sae, BUILTIN_HOOK, max_tokens=EVAL_TOKENS, batch_size=8)
    docs = select_split(open_corpus("stdlib"), "heldout")
    windows = torch.cat([t for _, t in token_batches(subject, docs, batch_size=64, max_tokens=EVAL_TOKENS)])
    acts = subject.activations(windows, BUILTIN_HOOK)
    text = windows != subject.tokenizer.bos_id
    x = acts[text]
    f = sae.encode(x)
    fires = (f > 0).sum(0).numpy()
    np.testing.assert_allclose(density, fires / len(x), rtol=1e-6)
    assert metrics.tokens == len(x) == int(text.sum())
    assert metrics.l0 == pytest.approx(float((f > 0).sum(1).float().mean()), rel=1e-6)
    assert metrics.l0 == pytest.approx(float(density.sum()), rel=1e-5)
    assert metrics.dead_fraction == pytest.approx(float((density == 0).mean()))
    assert metrics.dense_fraction == pytest.approx(float((density > 0.1).mean()))
    assert 0 < metrics.dead_fraction < 1 and 0 < metrics.dense_fraction < 1, "a random SAE has both"
    recon = sae.decode(f)
    fvu = float((recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert metrics.fvu == pytest.approx(fvu, rel=1e-4)

    def ce(logits: torch.Tensor) -> float:
        return float(F.cross_entropy(logits[:, :-1].flatten(0, 1), windows[:, 1:].flatten()))

    spliced = acts.clone()
    spliced[text] = recon
    ce_sae = ce(subject.run_with_hook(windows, BUILTIN_HOOK, replace=spliced)[0])
    ce_zero = ce(subject.run_with_hook(windows, BUILTIN_HOOK, replace=acts * ~text[..., None])[0])
    assert metrics.ce_clean == pytest.approx(ce(subject.logits(windows)), rel=1e-5)
    assert metrics.ce_with_reconstruction == pytest.approx(ce_sae, rel=1e-5)
    assert metrics.ce_zero_ablation == pytest.approx(ce_zero, rel=1e-5)
    assert metrics.loss_recovered == pytest.approx((ce_zero - ce_sae) / (ce_zero - metrics.ce_clean), rel=1e-3)
    assert metrics.loss_recovered < 0.999


def test_rerunning_a_finished_training_returns_its_summary_without_work(subject: SubjectModel, trained) -> None:
    out, summary, _ = trained
    model, calls = counting_subject(subject)
    again = train_sae(model, BUILTIN_HOOK, small_config(16), out)
    assert again == json.loads((out / "training.json").read_text())
    assert again["final_l0"] == summary["final_l0"] and again["final_l0"] is not None
    assert calls == [1]  # only the one-row probe of the hook width: no activations streamed


def test_plots_are_made_without_pyplot(tmp_path: Path) -> None:
    """Every figure (the SAE density plot and the catalog's) uses the object API: pyplot is never imported."""
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
import numpy as np
from autointerp.plots import plot_density_histogram, plot_score_distributions
from sae.metrics import plot_sae_density
out = Path({str(tmp_path)!r})
plot_sae_density(np.array([0.0, 0.001, 0.2, 0.02]), out / "sae.png")
plot_density_histogram({{"feature": [0.001, 0.2], "neuron": [0.02]}}, out / "units.png")
plot_score_distributions({{"detection": {{"feature": [0.5, 0.7], "neuron": [0.6]}}}}, out / "scores.png")
print("matplotlib.pyplot" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"
    for name in ("sae.png", "units.png", "scores.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
