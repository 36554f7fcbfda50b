"""Fuzzing the archive reader: 2,400 mutations of a real archive (the writer's scrypt cost, several chunks).

Bit flips, byte rewrites, truncations, appended bytes, chunk length fields and every header field
(scrypt parameters included): the reader raises ``ArchiveError`` every time, nothing else, and no
mutated archive ever decrypts, even given the true key (``TrueKey``: scrypt runs once): about 2 s on
2 cores.
Also: a header asking for more scrypt work than tao writes (plus a margin) is refused before deriving.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from tao_launcher.core import archive
from tao_launcher.errors import ArchiveError

KEY = "fuzz-key-0123"
SEED = 20261202
KIND_OFFSET = 11                      # after magic (8), version (2), kind length (1)
PARAMS_OFFSET = KIND_OFFSET + 3 + 1   # after kind "tao" and the KDF id


@pytest.fixture(scope="module")
def real_archive(tmp_path_factory) -> bytes:
    """A .tao archive as tao writes it (n=2**15), with small chunks so that it holds several."""
    root = tmp_path_factory.mktemp("fuzz-archive")
    payload = root / "payload"
    payload.mkdir()
    (payload / "manifest.json").write_text('{"task": "text_classification"}')
    (payload / "weights.bin").write_bytes(random.Random(SEED).randbytes(3000))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(archive, "CHUNK_SIZE", 1024)
        archive.save_archive(payload, root / "model.tao", KEY, "tao")
    return (root / "model.tao").read_bytes()


class TrueKey:
    """Stands in for key derivation: counts the calls and always returns the archive's true AES key.

    Whatever a mutated header says (salt, cost), the reader then holds the right key: a stronger
    adversary than a derivation from the changed header, and scrypt runs once for the whole fuzz."""

    def __init__(self, real_derive):
        self.real_derive = real_derive
        self.cipher = None
        self.calls = 0

    def __call__(self, key, header):
        self.calls += 1
        if self.cipher is None:
            self.cipher = self.real_derive(key, header)
        return self.cipher


def chunk_length_offsets(data: bytes) -> list:
    offset, offsets = PARAMS_OFFSET + 3 + archive.SALT_SIZE + archive.NONCE_PREFIX_SIZE, []
    while offset + 4 <= len(data):
        offsets.append(offset)
        offset += 4 + struct.unpack(">I", data[offset:offset + 4])[0]
    return offsets


def mutations(data: bytes, count: int):
    """``count`` (description, mutated bytes), seeded; every one differs from ``data``."""
    rng = random.Random(SEED)
    lengths = chunk_length_offsets(data)
    header_end = lengths[0]
    kinds = ["flip", "flip-header", "byte", "truncate", "append", "length", "params", "field", "chunks"]
    made = 0
    while made < count:
        kind = kinds[made % len(kinds)]
        out = bytearray(data)
        if kind == "flip":
            bit = rng.randrange(len(data) * 8)
            out[bit // 8] ^= 1 << (bit % 8)
        elif kind == "flip-header":
            bit = rng.randrange(header_end * 8)
            out[bit // 8] ^= 1 << (bit % 8)
        elif kind == "byte":
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif kind == "truncate":
            out = out[:rng.randrange(len(out))]
        elif kind == "append":
            out += rng.randbytes(rng.randint(1, 64))
        elif kind == "length":
            at = rng.choice(lengths)
            out[at:at + 4] = struct.pack(">I", rng.choice([0, 15, 16, 17, 1040, 1041, 2**31, 2**32 - 1,
                                                           rng.randrange(2**32)]))
        elif kind == "params":   # scrypt log2(n), r, p: anything, mostly out of bounds
            out[PARAMS_OFFSET:PARAMS_OFFSET + 3] = bytes(rng.choice([
                [rng.randrange(256), rng.randrange(256), rng.randrange(256)],
                [20, 8, 16], [255, 255, 255], [0, 0, 0], [17, 8, 1], [15, 9, 1], [15, 8, 3], [16, 8, 2],
                [15, 8, 2], [16, 8, 1], [14, 8, 1], [15, 4, 1]]))
        elif kind == "field":    # version, kind length, kind, KDF id
            field = rng.choice([(8, 10), (10, 11), (KIND_OFFSET, KIND_OFFSET + 3), (PARAMS_OFFSET - 1, PARAMS_OFFSET)])
            out[field[0]:field[1]] = rng.randbytes(field[1] - field[0])
        else:                    # whole chunks dropped, repeated or swapped
            spans = [(a, b) for a, b in zip(lengths, lengths[1:] + [len(data)])]
            i, j = rng.randrange(len(spans)), rng.randrange(len(spans))
            body = [data[a:b] for a, b in spans]
            body = rng.choice([body[:i] + body[i + 1:], body[:i + 1] + body[i:],
                               [body[j] if n == i else body[i] if n == j else c for n, c in enumerate(body)]])
            out = bytearray(data[:header_end] + b"".join(body))
        if bytes(out) != data:
            made += 1
            yield kind, bytes(out)


def test_no_mutated_archive_decrypts(real_archive, tmp_path, monkeypatch):
    derive = TrueKey(archive._derive_cipher)
    monkeypatch.setattr(archive, "_derive_cipher", derive)
    monkeypatch.setattr(archive, "CHUNK_SIZE", 1024)
    path = tmp_path / "model.tao"
    path.write_bytes(real_archive)
    with archive.open_archive(path, KEY) as folder:   # the unmutated archive opens
        assert (folder / "manifest.json").is_file()

    started, tried, by_kind = time.monotonic(), 0, {}
    for kind, data in mutations(real_archive, 2400):
        path.write_bytes(data)
        with pytest.raises(ArchiveError) as caught:
            with archive.open_archive(path, KEY):
                pass
        message = str(caught.value)
        assert message.startswith(f"cannot open {path}: ") and KEY not in message
        tried += 1
        by_kind[kind] = by_kind.get(kind, 0) + 1
    elapsed = time.monotonic() - started
    assert tried == 2400 and min(by_kind.values()) >= 2400 // len(by_kind) - 1, by_kind
    refused_early = tried + 1 - derive.calls    # rejected before derivation: header, cost, version, kind
    assert refused_early > 200, refused_early
    print(f"{tried} mutations, {refused_early} refused before key derivation, {elapsed:.1f} s")


@pytest.mark.parametrize("log2_n, r, p, accepted", [
    (16, 8, 1, True),     # the margin: twice the work of what tao writes (15, 8, 1)
    (15, 8, 2, True),
    (14, 8, 1, True),     # cheaper is fine
    (20, 8, 16, False),   # the crafted header of issue 11: ~40 s and 1 GiB before "wrong key"
    (17, 8, 1, False),
    (15, 9, 1, False),
    (15, 8, 3, False),
    (16, 8, 2, False),    # each parameter in bounds, the product is not
    (0, 8, 1, False),
    (15, 0, 1, False),
    (15, 8, 0, False),
])
def test_scrypt_cost_is_bounded_before_deriving(real_archive, tmp_path, monkeypatch, log2_n, r, p, accepted):
    monkeypatch.setattr(archive, "CHUNK_SIZE", 1024)
    derived = []
    real_derive = archive._derive_cipher
    monkeypatch.setattr(archive, "_derive_cipher",
                        lambda key, header: derived.append(header) or real_derive(key, header))
    data = bytearray(real_archive)
    data[PARAMS_OFFSET:PARAMS_OFFSET + 3] = bytes([log2_n, r, p])
    path = tmp_path / "model.tao"
    path.write_bytes(bytes(data))
    started = time.monotonic()
    with pytest.raises(ArchiveError, match="wrong key or corrupted file"):
        with archive.open_archive(path, KEY):
            pass
    assert bool(derived) == accepted   # refused headers are refused before any derivation; accepted ones
    # derive, and still do not open: the header is authenticated data of every chunk
    if not accepted:
        assert time.monotonic() - started < 0.5
    assert archive._scrypt_cost_acceptable(2**log2_n, r, p) == accepted
