"""EleutherAI delphi latent explanation and score files.

A delphi run writes `explanations/{module}_latent{N}.txt`, each holding the explanation as one JSON
string, and `scores/{scorer}/{module}_latent{N}.txt` (any "/" in the module name written as "--"),
each a JSON list of the scored examples, {"str_tokens", "activations", "distance", "activating",
"prediction", "probability", "correct"} for the detection and fuzz scorers. The importer reads a run
folder, its explanations folder, or one explanation file; each classifier score is imported as the
fraction of examples the scorer's prediction got right.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from autointerp.errors import UserError
from autointerp.query.imports.labels import ImportedLabel, parse, read_json
from autointerp.records import UnitKind

TOOL = "delphi"
_LATENT_FILE = re.compile(r"^(?P<module>.+)_latent(?P<index>\d+)\.txt$")


class ClassifierOutput(BaseModel):
    activating: bool
    prediction: bool | None = None
    correct: bool | None = None


def _explanation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    folder = path / "explanations" if (path / "explanations").is_dir() else path
    if not folder.is_dir():
        raise UserError(f"no delphi run folder, explanations folder or explanation file at {path}")
    files = sorted(p for p in folder.iterdir() if _LATENT_FILE.match(p.name))
    if not files:
        raise UserError(f"{folder} holds no delphi explanation files (named MODULE_latentN.txt)")
    return files


def _accuracy(file: Path) -> float | None:
    """The fraction of a classifier score file's examples predicted right (None: none predicted)."""
    data = read_json(file)
    if not isinstance(data, list):
        raise UserError(f"{file} is not a delphi classifier score file (a JSON list of scored examples)")
    outputs = [parse(ClassifierOutput, item, file, "delphi classifier score file") for item in data]
    judged = [o.correct for o in outputs if o.prediction is not None and o.correct is not None]
    return sum(judged) / len(judged) if judged else None


def read_delphi(path: Path, kind: UnitKind = "feature", module: str | None = None) -> Iterator[ImportedLabel]:
    """The explanations under `path` as labels of units of `kind`; latents of several modules need
    `module` to say which one this catalog's units are."""
    files = _explanation_files(path)
    named = {(m := _LATENT_FILE.match(f.name)) and m["module"] for f in files}
    if path.is_file() and None in named:
        raise UserError(f"{path} is not named like a delphi explanation file (MODULE_latentN.txt)")
    modules = sorted(str(m) for m in named)
    if module is None and len(modules) > 1:
        raise UserError(f"{path} holds latents of modules {modules}; pick the one of this catalog with --module")
    scores_dir = files[0].parent.parent / "scores"
    for file in files:
        match = _LATENT_FILE.match(file.name)
        assert match is not None  # _explanation_files and the check above keep only such names
        if module is not None and match["module"] != module:
            continue
        text = read_json(file)
        if not isinstance(text, str):
            raise UserError(f"{file} is not a delphi explanation file (one JSON string)")
        scored = f"{match['module'].replace('/', '--')}_latent{match['index']}.txt"
        scores = {
            folder.name: _accuracy(folder / scored)
            for folder in (sorted(scores_dir.iterdir()) if scores_dir.is_dir() else [])
            if (folder / scored).is_file()
        }
        yield ImportedLabel(
            kind=kind,
            index=int(match["index"]),
            text=text,
            meta={"file": file.name, "module": match["module"], "their_scores": scores},
        )
