"""``plain``: the identity, the unencrypted baseline with the same interface as the schemes."""
from __future__ import annotations

from ..ciphers.base import Cipher
from ..ciphers.engine import Table


class PlainCipher(Cipher):
    """Identity: the unencrypted baseline."""

    scheme = "plain"
    table_rank = 0

    @classmethod
    def generate(cls, rng, shape):
        return cls(shape)

    @classmethod
    def key_space(cls, shape) -> int:
        return 1

    @classmethod
    def key_space_rows(cls, shape) -> list:
        return []  # no key: nothing to count in the key-space table

    def build_table(self) -> Table:
        return Table(None, None)
