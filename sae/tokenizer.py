"""Tokenizers behind one small interface: ids in, ids out, and one display string per token.

The built-in subject model uses a byte-level BPE of ~4096 tokens trained with `tokenizers` on the
training split of the stdlib corpus; Hugging Face models bring their own tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from sae.corpus import Document

BOS_TOKEN = "<|endoftext|>"


class TextTokenizer(Protocol):
    vocab_size: int
    bos_id: int  # marks the start of every document in a token stream

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def token_strings(self, ids: Iterable[int]) -> list[str]: ...


class BPETokenizer:
    """A `tokenizers` byte-level BPE whose token 0 is the document separator."""

    def __init__(self, tokenizer) -> None:  # tokenizers.Tokenizer
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.bos_id = tokenizer.token_to_id(BOS_TOKEN)
        self._strings: list[str] | None = None

    @classmethod
    def load(cls, path: Path) -> BPETokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: Path) -> None:
        self._tok.save(str(path))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tok.encode_batch(texts, add_special_tokens=False)]

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        if self._strings is None:  # decode each vocabulary entry once
            self._strings = [self._tok.decode([i], skip_special_tokens=False) for i in range(self.vocab_size)]
        return [self._strings[i] for i in ids]


def train_bpe(docs: Iterable[Document], vocab_size: int = 4096, seed: int = 0) -> BPETokenizer:
    """Train a byte-level BPE on the documents' text. Deterministic for the same input order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )

    def texts() -> Iterator[str]:
        for doc in docs:
            yield doc.text

    tok.train_from_iterator(texts(), trainer=trainer)
    return BPETokenizer(tok)


class HFTokenizer:
    """A `transformers` tokenizer seen through the same interface."""

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer
        self.vocab_size = len(tokenizer)
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.bos_id = int(bos if bos is not None else 0)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._tok(texts, add_special_tokens=False)["input_ids"]

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        return [self._tok.decode([int(i)]) for i in ids]
