"""The settings models hold every default; an option left out on the command line must give the
model's own default, so a default changed in one place cannot silently differ in the other."""

from __future__ import annotations

import argparse

import pytest

from autointerp import cli
from autointerp.batch_labeling import BatchSettings
from autointerp.pipeline import LabelSpec, SubjectSpec, UnitSelection
from sae.harvest import HarvestConfig
from sae.subject.training import SubjectTrainConfig
from sae.training import SAETrainConfig


def _parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_subject_and_sae_training_options_default_to_the_models() -> None:
    assert cli._subject_train_config(_parse("subject", "train")) == SubjectTrainConfig()
    for command in ("train", "sweep"):
        assert cli._sae_train_config(_parse("sae", command, "--out", "x")) == SAETrainConfig()


def test_harvest_options_default_to_the_models() -> None:
    assert cli._harvest_settings(_parse("harvest", "--db", "c.db")) == (SubjectSpec(), HarvestConfig())


@pytest.mark.parametrize("command", ["explain", "score"])
def test_label_options_default_to_the_models(command: str) -> None:
    args = _parse(command, "--db", "c.db")
    assert cli._label_spec(args) == LabelSpec()
    assert cli._selection(args) == UnitSelection()
    assert cli._batch_settings(args) == BatchSettings()
