"""Corpora: iterables of documents with stable ids, and the deterministic held-out split.

The built-in corpus is the running interpreter's own standard library (source files and the
pydoc topic texts), so every machine that runs Python has it offline: code, English prose, and
data blobs (encoding tables, test fixtures).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from sae.errors import UserError

Split = Literal["train", "heldout", "all"]
HELDOUT_PERCENT = 10


# The longest text handed to the tokenizer at once: a document longer than this (a 50 MB one-line
# file) is read and tokenized in pieces, so memory follows this size, not the document's.
PIECE_CHARS = 1 << 20
_READ_BYTES = 1 << 20


class Document(BaseModel):
    id: str
    text: str
    continues: bool = False  # the next piece of the previous document: no separator before it


def pieces(doc_id: str, chunks: Iterable[str], limit: int = PIECE_CHARS) -> Iterator[Document]:
    """One document, arriving as `chunks` of text, as pieces of at most about `limit` characters,
    cut before a whitespace character where there is one (so a word is not split between pieces)."""
    held = ""
    first = True
    for chunk in chunks:
        held += chunk
        while len(held) > limit:
            cut = max(held.rfind(" ", 0, limit), held.rfind("\n", 0, limit))
            cut = cut if cut > 0 else limit
            yield Document(id=doc_id, text=held[:cut], continues=not first)
            held, first = held[cut:], False
    if held.strip() if first else held:  # (a document of blanks alone is no document)
        yield Document(id=doc_id, text=held, continues=not first)


def _utf8_chunks(path: Path) -> Iterator[str]:
    """The file's text, `_READ_BYTES` at a time, with one clear error for bytes that are not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while True:
            raw = f.read(_READ_BYTES)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                raise UserError(
                    f"{path} is not UTF-8 text (near byte {offset + err.start}: {err.reason}); convert it or remove it"
                ) from None
            if text:
                yield text
            if not raw:
                return
            offset += len(raw)


def is_heldout(doc_id: str, heldout_percent: int = HELDOUT_PERCENT) -> bool:
    """A document's split depends on its id alone, so it never lands in both splits."""
    digest = hashlib.sha1(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < heldout_percent


def select_split(docs: Iterable[Document], split: Split) -> Iterator[Document]:
    for doc in docs:
        if split == "all" or (split == "heldout") == is_heldout(doc.id):
            yield doc


@functools.cache
def _stdlib_files() -> tuple[Path, tuple[Path, ...]]:
    """The standard library's folder and its .py files in sorted order: listing them walks ~2,000
    folders (half a second), and a run opens the corpus once per pass."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "__pycache__" not in p.parts)
    return root, tuple(paths)


def stdlib_corpus() -> Iterator[Document]:
    """The standard library's .py files in sorted path order, then each pydoc topic as prose."""
    root, paths = _stdlib_files()
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a handful of test fixtures are deliberately not UTF-8
        if text.strip():
            yield Document(id=f"stdlib:{rel}", text=text)
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a stripped interpreter: code alone still makes a corpus
        return
    for name in sorted(topics):
        yield Document(id=f"pydoc:{name}", text=topics[name])


def folder_corpus(folder: Path, pattern: str = "**/*.txt") -> Iterator[Document]:
    """Every file matching `pattern` under `folder`, as one document each, in sorted order."""
    paths = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not paths:
        raise UserError(f"no files matching {pattern!r} in {folder}")
    for path in paths:
        yield from pieces(f"file:{path.relative_to(folder).as_posix()}", _utf8_chunks(path))


def _lines(path: Path) -> Iterator[str]:
    """The file's lines, read as they come (a line is held whole: JSON cannot be parsed in parts)."""
    held = ""
    for chunk in _utf8_chunks(path):
        held += chunk
        *complete, held = held.split("\n")
        yield from complete
    if held:
        yield held


def _form_feed_parts(path: Path) -> Iterator[Iterator[str]]:
    """The file's text cut at form feeds, each part as a stream of chunks (consume one before the next)."""
    chunks = _utf8_chunks(path)
    pending: list[str] = []

    def part() -> Iterator[str]:
        while True:
            chunk = pending.pop() if pending else next(chunks, None)
            if chunk is None:
                return
            head, feed, tail = chunk.partition("\f")
            if head:
                yield head
            if feed:
                pending.append(tail)
                return

    while True:
        yield part()
        if not pending:
            return


def text_file_corpus(path: Path) -> Iterator[Document]:
    """A .txt file (documents separated by form feeds, or one document) or .jsonl, read as it is used."""
    if path.suffix == ".jsonl":
        for line_no, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise UserError(f'{path}:{line_no}: each line needs a "text" string field')
            yield from pieces(str(row.get("id", f"{path.name}:{line_no}")), [row["text"]])
    else:
        for i, part in enumerate(_form_feed_parts(path)):
            yield from pieces(f"{path.name}:{i}", part)


def hf_dataset_corpus(name: str, text_field: str = "text", split: str = "train") -> Iterator[Document]:
    """A Hugging Face dataset (needs `datasets` and a reachable hub or local cache), streamed."""
    try:
        import datasets
    except ImportError:
        raise UserError("hf: corpora need the `datasets` package: pip install datasets") from None
    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as err:  # noqa: BLE001 (the hub raises many types; all mean "cannot load it here")
        raise UserError(f"cannot load dataset {name!r}: {err}") from None
    for i, row in enumerate(ds):
        if text_field not in row:
            raise UserError(f"dataset {name!r} has no field {text_field!r}; its fields are {sorted(row)}")
        yield from pieces(f"hf:{name}:{i}", [str(row[text_field])])


class CorpusSpec(BaseModel):
    """Where documents come from, as written in a config file or on the command line.

    `stdlib` (the default), a folder of .txt files, a .txt or .jsonl file, or `hf:NAME`.
    """

    source: str = "stdlib"
    pattern: str = "**/*.txt"
    text_field: str = "text"


def open_corpus(spec: CorpusSpec | str) -> Iterator[Document]:
    """The documents named by `spec`, failing early with a clear message if there are none."""
    if isinstance(spec, str):
        spec = CorpusSpec(source=spec)
    src = spec.source
    if src == "stdlib":
        docs: Iterator[Document] = stdlib_corpus()
    elif src.startswith("hf:"):
        docs = hf_dataset_corpus(src[3:], text_field=spec.text_field)
    else:
        path = Path(src).expanduser()
        if path.is_dir():
            docs = folder_corpus(path, spec.pattern)
        elif path.is_file():
            docs = text_file_corpus(path)
        else:
            raise UserError(f"corpus {src!r} is neither 'stdlib', 'hf:NAME', a folder nor a file")
    return _non_empty(docs, src)


def _non_empty(docs: Iterator[Document], name: str) -> Iterator[Document]:
    first = next(docs, None)
    if first is None:
        raise UserError(f"corpus {name!r} has no documents with text")

    def chained() -> Iterator[Document]:
        yield first
        yield from docs

    return chained()
