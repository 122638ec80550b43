"""Corpora (stdlib, folder, .txt, .jsonl), the held-out split, and the token-window policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sae.corpus import (
    CorpusSpec,
    Document,
    is_heldout,
    open_corpus,
    pieces,
    select_split,
    stdlib_corpus,
    text_file_corpus,
)
from sae.errors import UserError
from sae.subject.models import builtin_model_dir
from sae.tokenizer import BPETokenizer
from sae.windows import batched_windows, token_stream, token_windows


@pytest.fixture(scope="module")
def stdlib_docs() -> list[Document]:
    return list(open_corpus("stdlib"))


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.load(builtin_model_dir() / "tokenizer.json")


# --- the built-in stdlib corpus ------------------------------------------------------------------


def test_stdlib_corpus_order_and_ids_are_deterministic(stdlib_docs: list[Document]) -> None:
    again = [doc.id for doc in stdlib_corpus()]
    ids = [doc.id for doc in stdlib_docs]
    assert ids == again
    assert len(set(ids)) == len(ids), "document ids must be unique"
    code_ids = [i for i in ids if i.startswith("stdlib:")]
    prose_ids = [i for i in ids if i.startswith("pydoc:")]
    assert ids == code_ids + prose_ids, "source files first, then pydoc topics"
    assert code_ids == sorted(code_ids) and prose_ids == sorted(prose_ids)


def test_stdlib_corpus_has_code_and_prose(stdlib_docs: list[Document]) -> None:
    by_id = {doc.id: doc.text for doc in stdlib_docs}
    assert "def " in by_id["stdlib:json/decoder.py"]
    assert "import " in by_id["stdlib:json/decoder.py"]
    prose = [doc.text for doc in stdlib_docs if doc.id.startswith("pydoc:")]
    assert len(prose) > 50
    words = " ".join(prose).split()
    # English prose: the commonest English words are frequent in it
    assert sum(w in ("the", "a", "is", "of") for w in words) / len(words) > 0.05
    assert all(doc.text.strip() for doc in stdlib_docs), "empty documents are skipped"


def test_heldout_split_is_deterministic_and_disjoint(stdlib_docs: list[Document]) -> None:
    train = [d.id for d in select_split(stdlib_docs, "train")]
    heldout = [d.id for d in select_split(stdlib_docs, "heldout")]
    everything = [d.id for d in select_split(stdlib_docs, "all")]
    assert heldout == [d.id for d in select_split(iter(stdlib_docs), "heldout")]
    assert not set(train) & set(heldout)
    assert sorted(train + heldout) == sorted(everything) == sorted(d.id for d in stdlib_docs)
    assert 0.05 < len(heldout) / len(everything) < 0.15  # HELDOUT_PERCENT = 10
    # the split follows the id alone, not the text or the position
    moved = [Document(id=i, text="other text") for i in reversed(heldout)]
    assert [d.id for d in select_split(moved, "heldout")] == list(reversed(heldout))
    assert all(is_heldout(i) for i in heldout) and not any(is_heldout(i) for i in train)


# --- user corpora ----------------------------------------------------------------------------------


def test_folder_corpus_reads_matching_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "sub" / "c.txt").write_text("third — ünïcode", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not matched", encoding="utf-8")
    docs = list(open_corpus(str(tmp_path)))
    assert [(d.id, d.text) for d in docs] == [
        ("file:a.txt", "first"),
        ("file:b.txt", "second"),
        ("file:sub/c.txt", "third — ünïcode"),
    ]
    md = list(open_corpus(CorpusSpec(source=str(tmp_path), pattern="*.md")))
    assert [d.id for d in md] == ["file:notes.md"]


def test_txt_file_splits_documents_on_form_feeds(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("chapter one\n\fchapter two\f  \n\fchapter three", encoding="utf-8")
    docs = list(open_corpus(str(path)))
    assert [d.text for d in docs] == ["chapter one\n", "chapter two", "chapter three"]
    assert [d.id for d in docs] == ["book.txt:0", "book.txt:1", "book.txt:3"]
    single = tmp_path / "one.txt"
    single.write_text("just one\n\ndocument", encoding="utf-8")
    assert [d.text for d in open_corpus(str(single))] == ["just one\n\ndocument"]


def test_jsonl_corpus_uses_ids_when_given(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    rows = [{"id": "alpha", "text": "x = 1"}, {"text": "no id here"}, {"id": 7, "text": "numeric id"}]
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n")
    docs = list(open_corpus(str(path)))
    assert [(d.id, d.text) for d in docs] == [
        ("alpha", "x = 1"),
        ("docs.jsonl:2", "no id here"),
        ("7", "numeric id"),
    ]


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt is not UTF-8"):
        list(open_corpus(str(tmp_path)))
    with pytest.raises(UserError, match="not UTF-8"):
        list(open_corpus(str(tmp_path / "latin1.txt")))


def test_empty_corpora_are_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no files matching"):
        open_corpus(str(tmp_path))
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\f\n", encoding="utf-8")
    with pytest.raises(UserError, match="no documents with text"):
        open_corpus(str(blank))
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no documents with text"):
        open_corpus(str(empty_jsonl))
    with pytest.raises(UserError, match="neither 'stdlib'"):
        open_corpus(str(tmp_path / "missing"))


def test_bad_jsonl_lines_name_the_line(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"text": "unterminated\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        list(open_corpus(str(bad_json)))
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"text": "ok"}\n{"body": "wrong field"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r'no_text\.jsonl:2: each line needs a "text" string'):
        list(open_corpus(str(no_text)))
    not_object = tmp_path / "list.jsonl"
    not_object.write_text('["text"]\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"list\.jsonl:1"):
        list(open_corpus(str(not_object)))


# --- windows ---------------------------------------------------------------------------------------


def _docs(n: int) -> list[Document]:
    """Documents of varied lengths; more than one tokenizer chunk (32 documents)."""
    return [Document(id=f"d{i}", text=f"def f{i}(x):\n    return x * {i}\n" * (1 + i % 5)) for i in range(n)]


def test_token_stream_starts_every_document_with_bos(tokenizer: BPETokenizer) -> None:
    docs = _docs(40)
    parts = list(token_stream(docs, tokenizer))
    assert len(parts) == len(docs)
    for doc, ids in zip(docs, parts):
        assert ids[0] == tokenizer.bos_id
        assert ids[1:].tolist() == tokenizer.encode_batch([doc.text])[0]
        assert tokenizer.bos_id not in ids[1:]


def test_windows_are_consecutive_fixed_length_cuts_of_the_stream(tokenizer: BPETokenizer) -> None:
    docs = _docs(40)
    stream = np.concatenate(list(token_stream(docs, tokenizer)))
    doc_starts = np.cumsum([0] + [len(p) for p in token_stream(docs, tokenizer)])[:-1]
    ctx = 48
    windows = list(token_windows(docs, tokenizer, ctx))
    n = len(stream) // ctx
    assert len(stream) % ctx != 0, "the test wants a partial tail to drop"
    assert len(windows) == n
    assert all(w.shape == (ctx,) and w.dtype == np.int64 for w in windows)
    np.testing.assert_array_equal(np.stack(windows), stream[: n * ctx].reshape(n, ctx))
    # BOS exactly at document starts (those inside the kept windows)
    bos_positions = np.flatnonzero(np.stack(windows).reshape(-1) == tokenizer.bos_id)
    np.testing.assert_array_equal(bos_positions, doc_starts[doc_starts < n * ctx])
    assert windows[0][0] == tokenizer.bos_id


def test_window_errors_and_batching(tokenizer: BPETokenizer) -> None:
    with pytest.raises(UserError, match="at least 2"):
        list(token_windows(_docs(3), tokenizer, ctx=1))
    with pytest.raises(UserError, match="fewer than 4096 tokens"):
        list(token_windows([Document(id="x", text="tiny")], tokenizer, ctx=4096))
    windows = list(token_windows(_docs(40), tokenizer, 16))
    batches = list(batched_windows(windows, 7))
    assert [b.shape[0] for b in batches[:-1]] == [7] * (len(batches) - 1)
    assert 1 <= batches[-1].shape[0] <= 7
    np.testing.assert_array_equal(np.concatenate(batches), np.stack(windows))


def test_hf_corpus_without_datasets_says_what_to_install() -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install datasets"):
            open_corpus("hf:wikitext")
    else:
        pytest.skip("`datasets` is installed; loading a hub dataset needs the network")


# --- long documents are read and tokenized in pieces ---------------------------------------------


def test_a_long_document_comes_in_pieces_that_join_to_it(tmp_path: Path) -> None:
    text = " ".join(f"w{i}" for i in range(5000)) + "\fsecond"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    docs = list(pieces_of(text_file_corpus(path), limit=1000))
    first = [d for d in docs if d.id == "long.txt:0"]
    assert len(first) > 20 and all(len(d.text) <= 1000 for d in first)
    assert "".join(d.text for d in first) == text.split("\f")[0]
    assert [d.continues for d in first] == [False] + [True] * (len(first) - 1)
    assert all(d.text.startswith(" ") for d in first[1:]), "cut before a space: no word is split"
    assert [(d.id, d.text, d.continues) for d in docs[len(first) :]] == [("long.txt:1", "second", False)]


def pieces_of(docs, limit: int):
    """The documents re-cut at `limit` characters (the shipped limit is 1 MB: too big for a fast test)."""
    for doc in docs:
        if doc.continues:
            raise AssertionError("the test file fits one piece at the shipped limit")
        yield from pieces(doc.id, [doc.text], limit)


def test_pieces_after_the_first_get_no_document_separator(subject) -> None:
    docs = [Document(id="a", text="one two"), Document(id="a", text=" three", continues=True)]
    ids = np.concatenate(list(token_stream(docs, subject.tokenizer)))
    assert (ids == subject.tokenizer.bos_id).sum() == 1 and ids[0] == subject.tokenizer.bos_id


MEMORY_PROBE = """
import resource, sys
from pathlib import Path
from sae.corpus import open_corpus
from sae.subject.models import load_subject
from sae.windows import token_windows
tokenizer = load_subject("builtin").tokenizer
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(1 for _ in token_windows(open_corpus(sys.argv[1]), tokenizer, 64))
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_one_line_file_of_16_mb_is_windowed_in_little_memory(tmp_path: Path) -> None:
    """Read whole and tokenized at once, this file's windows took 2.66 GB more memory (50 MB: 7.1 GB);
    in pieces, 425 MB at both sizes (measured on the shared 2-core machine)."""
    path = tmp_path / "one_line.txt"
    words = " ".join(f"token{i % 997}" for i in range(200_000))
    with path.open("w", encoding="utf-8") as f:
        while f.tell() < 16 << 20:
            f.write(words + " ")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True, cwd=root
    ).stdout.split()
    windows, grown_mb = int(out[0]), int(out[1])
    assert windows * 64 > path.stat().st_size // 16, "every token of the line is read"
    assert grown_mb < 1000, f"{grown_mb} MB"
