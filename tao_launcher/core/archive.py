"""Encrypted model archives: one container format for ``.tao``, ``.riva`` and ``.eonnx``.

A trained model is a folder of files; an archive is that folder as an uncompressed
tar, encrypted so that only holders of the key can use it and so that any change to
any byte is detected before a single file is trusted. The tar is streamed through
the cipher in chunks, so multi-GB models never sit in memory at once.

File layout (all integers big-endian; ``L`` is the kind length)::

    offset  size  field
    0       8     magic b"TAOARC\\x00\\x01"
    8       2     format version, u16 (this code writes and reads 1)
    10      1     kind length L, u8 (1..32)
    11      L     kind, ascii [a-z0-9_-] ("tao", "riva", "eonnx")
    11+L    1     KDF id, u8 (1 = scrypt)
    12+L    1     scrypt log2(n), u8 (writer: 15; reader refuses > 16)
    13+L    1     scrypt r, u8 (writer: 8)
    14+L    1     scrypt p, u8 (writer: 1)
    15+L    16    random salt
    31+L    7     random nonce prefix
    38+L    ...   body: chunks, each a u32 length followed by ciphertext || 16-byte tag

Key: scrypt(key as utf-8, salt, n, r, p) -> 32 bytes -> AES-256-GCM. The reader uses
the header's n, r, p but refuses (as corrupted, before deriving) anything costlier than the
writer's parameters with a small margin: n > 2**16, r > 8, p > 2, or n*r*p > 2 * 2**15 * 8.
Cost of the writer's n=2**15, r=8, p=1: ~0.12 s and ~32 MiB per save or open (2 cores).

Chunks (STREAM construction): the plaintext is cut into 4 MiB pieces; the last one
holds 0..4 MiB (an empty payload still has one final chunk), so each stored length
is 16..4 MiB+16 and the file ends right after the final chunk. Chunk ``i`` is sealed
with nonce = prefix (7) || i as u32 (4) || final flag (1 byte: 1 on the last chunk,
0 otherwise) and the whole header as associated data. So a changed header, reordered
or dropped chunks, a missing final chunk and bytes after it all fail authentication,
which is reported exactly like a wrong key.

Payload: a tar holding only regular files with relative paths (sorted; owner and
permission bits normalised); by convention ``manifest.json`` sits at its root.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import struct
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tao_launcher.core.faultpoints import pause_point
from tao_launcher.errors import ArchiveError, UsageError

MAGIC = b"TAOARC\x00\x01"
FORMAT_VERSION = 1
KDF_SCRYPT = 1

# Writer's scrypt cost: ~0.1 s and 32 MiB (128 * n * r bytes) per save or open.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
# The reader's bound: what this writer uses plus a small margin (one doubling), checked before any
# derivation, so a crafted header costs at most ~0.25 s and 64 MiB before "wrong key or corrupted".
MAX_SCRYPT_N = 2 * SCRYPT_N
MAX_SCRYPT_R = SCRYPT_R
MAX_SCRYPT_P = 2
MAX_SCRYPT_WORK = 2 * SCRYPT_N * SCRYPT_R * SCRYPT_P   # n * r * p: scrypt's time; 128 * n * r its memory

CHUNK_SIZE = 4 * 1024 * 1024
TAG_SIZE = 16
SALT_SIZE = 16
NONCE_PREFIX_SIZE = 7
KIND_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")

MISSING_KEY_MESSAGE = "an encryption key is required: pass -k KEY or set TAO_KEY"

_VERSION = struct.Struct(">H")
_LENGTH = struct.Struct(">I")
_SCRYPT_PARAMS = struct.Struct(">BBB")


class _Corrupted(Exception):
    """Internal signal: the bytes do not authenticate or do not parse as an archive."""


class WrongKeyOrCorrupted(ArchiveError):
    """``cannot open PATH: wrong key or corrupted file``: the two cannot be told apart, on purpose. Whoever
    knows where the key came from adds the fix (core/model.py for -m, the trainer for last.ckpt)."""

    def __init__(self, path: Path):
        super().__init__(f"cannot open {path}: wrong key or corrupted file")


@dataclass(frozen=True)
class _Header:
    raw: bytes
    kind: str
    log2_n: int
    r: int
    p: int
    salt: bytes
    nonce_prefix: bytes


def _encode_header(kind: str) -> _Header:
    """A fresh header with the writer's KDF cost and new random salt and nonce prefix."""
    if not KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"archive kind must match {KIND_PATTERN.pattern}, got {kind!r}")
    log2_n = SCRYPT_N.bit_length() - 1
    salt = secrets.token_bytes(SALT_SIZE)
    nonce_prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
    kind_bytes = kind.encode("ascii")
    raw = b"".join([
        MAGIC,
        _VERSION.pack(FORMAT_VERSION),
        bytes([len(kind_bytes)]),
        kind_bytes,
        bytes([KDF_SCRYPT]),
        _SCRYPT_PARAMS.pack(log2_n, SCRYPT_R, SCRYPT_P),
        salt,
        nonce_prefix,
    ])
    return _Header(raw, kind, log2_n, SCRYPT_R, SCRYPT_P, salt, nonce_prefix)


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise _Corrupted
    return data


def _read_header(source: BinaryIO, path: Path) -> _Header:
    """Parse the header; bad magic and too-new versions get their own messages."""
    magic = source.read(len(MAGIC))
    if magic != MAGIC:
        raise ArchiveError(f"cannot open {path}: not a tao archive (bad header)")
    version_bytes = _read_exact(source, _VERSION.size)
    (version,) = _VERSION.unpack(version_bytes)
    if version > FORMAT_VERSION:
        raise ArchiveError(
            f"cannot open {path}: archive format version {version} is newer than this "
            f"tao reads (version {FORMAT_VERSION}); a newer tao is needed"
        )
    if version != FORMAT_VERSION:
        raise _Corrupted
    kind_length = _read_exact(source, 1)
    kind_bytes = _read_exact(source, kind_length[0])
    kind = kind_bytes.decode("ascii", errors="replace")
    if not KIND_PATTERN.fullmatch(kind):
        raise _Corrupted
    kdf_id = _read_exact(source, 1)
    if kdf_id[0] != KDF_SCRYPT:
        raise _Corrupted
    params = _read_exact(source, _SCRYPT_PARAMS.size)
    log2_n, r, p = _SCRYPT_PARAMS.unpack(params)
    if not _scrypt_cost_acceptable(2**log2_n, r, p):
        raise _Corrupted
    salt = _read_exact(source, SALT_SIZE)
    nonce_prefix = _read_exact(source, NONCE_PREFIX_SIZE)
    raw = b"".join([magic, version_bytes, kind_length, kind_bytes, kdf_id, params, salt,
                    nonce_prefix])
    return _Header(raw, kind, log2_n, r, p, salt, nonce_prefix)


def _scrypt_cost_acceptable(n: int, r: int, p: int) -> bool:
    """Only a tampered header asks for more than the writer's cost with a small margin."""
    return (2 <= n <= MAX_SCRYPT_N and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P
            and n * r * p <= MAX_SCRYPT_WORK)


def _derive_cipher(key: str, header: _Header) -> AESGCM:
    kdf = Scrypt(salt=header.salt, length=32, n=2**header.log2_n, r=header.r, p=header.p)
    return AESGCM(kdf.derive(key.encode("utf-8")))


def _nonce(header: _Header, counter: int, final: bool) -> bytes:
    return header.nonce_prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _require_key(key: str) -> None:
    if not key:
        raise UsageError(MISSING_KEY_MESSAGE)


class _ChunkEncryptor:
    """Write-only stream: writes the header, then seals what it is given chunk by chunk.

    A full chunk is only sealed once more data follows it, because only ``finish()``
    knows which chunk is the last one and must carry the final flag.
    """

    def __init__(self, out: BinaryIO, key: str, kind: str) -> None:
        self._out = out
        self._header = _encode_header(kind)
        self._cipher = _derive_cipher(key, self._header)
        self._buffer = bytearray(CHUNK_SIZE)  # filled in place: no reallocation per write
        self._filled = 0
        self._counter = 0
        out.write(self._header.raw)

    def write(self, data: bytes) -> int:
        remaining = memoryview(data)
        while remaining:
            if self._filled == CHUNK_SIZE:
                self._write_chunk(final=False)
            taken = min(CHUNK_SIZE - self._filled, len(remaining))
            self._buffer[self._filled:self._filled + taken] = remaining[:taken]
            self._filled += taken
            remaining = remaining[taken:]
        return len(data)

    def finish(self) -> None:
        """Seal the final chunk; the archive is complete only after this."""
        self._write_chunk(final=True)

    def _write_chunk(self, final: bool) -> None:
        nonce = _nonce(self._header, self._counter, final)
        plaintext = memoryview(self._buffer)[:self._filled]
        sealed = self._cipher.encrypt(nonce, plaintext, self._header.raw)
        self._out.write(_LENGTH.pack(len(sealed)))
        self._out.write(sealed)
        self._filled = 0
        self._counter += 1


class _ChunkDecryptor:
    """Read-only stream of authenticated plaintext.

    Returns EOF only after the final-flagged chunk has authenticated and nothing
    follows it; anything else raises ``_Corrupted``.
    """

    def __init__(self, source: BinaryIO, header: _Header, cipher: AESGCM) -> None:
        self._source = source
        self._header = header
        self._cipher = cipher
        self._counter = 0
        self._plaintext = b""
        self._position = 0
        self._next_length = self._read_length()
        if self._next_length is None:
            raise _Corrupted  # not even the final chunk

    def read(self, size: int) -> bytes:
        while self._position == len(self._plaintext) and self._next_length is not None:
            self._open_next_chunk()
        data = self._plaintext[self._position:self._position + size]
        self._position += len(data)
        return data

    def _read_length(self) -> int | None:
        """The next chunk's length, or None at a clean end of file."""
        prefix = self._source.read(_LENGTH.size)
        if not prefix:
            return None
        if len(prefix) != _LENGTH.size:
            raise _Corrupted
        (length,) = _LENGTH.unpack(prefix)
        if not TAG_SIZE <= length <= CHUNK_SIZE + TAG_SIZE:
            raise _Corrupted
        return length

    def _open_next_chunk(self) -> None:
        sealed = _read_exact(self._source, self._next_length)
        self._next_length = self._read_length()
        final = self._next_length is None
        nonce = _nonce(self._header, self._counter, final)
        try:
            self._plaintext = self._cipher.decrypt(nonce, sealed, self._header.raw)
        except InvalidTag:
            raise _Corrupted from None
        self._position = 0
        self._counter += 1


def _files_to_pack(folder: Path) -> list[tuple[Path, str]]:
    """Every regular file (symlinks to files included, as content) under ``folder``, sorted.

    Symlinked folders are not descended into, so a link cycle cannot loop forever.
    """
    found = []
    for directory, _subdirs, names in os.walk(folder):
        for name in names:
            full = Path(directory, name)
            if full.is_file():
                found.append((full, full.relative_to(folder).as_posix()))
    return sorted(found, key=lambda pair: pair[1])


def _add_file(tar: tarfile.TarFile, source: Path, name: str) -> None:
    """Add one file's content, without the local owner names or permission bits."""
    info = tar.gettarinfo(str(source), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    with source.open("rb") as content:
        tar.addfile(info, content)


def save_archive(folder: Path, dest: Path, key: str, kind: str) -> None:
    """Encrypt every file under ``folder`` into ``dest``, replacing it only once complete."""
    _require_key(key)
    folder, dest = Path(folder), Path(dest)
    if not folder.is_dir():
        raise ArchiveError(f"cannot write {dest}: {folder} is not a folder")
    files = _files_to_pack(folder)  # listed before the temp file exists, so it is not packed
    partial = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.partial"
    try:
        # 0o666 minus the umask: the same permissions any other output file gets.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "wb") as out:
            encryptor = _ChunkEncryptor(out, key, kind)
            with tarfile.open(fileobj=encryptor, mode="w|", dereference=True) as tar:
                for source, name in files:
                    _add_file(tar, source, name)
            pause_point("archive-write")  # the fault tests' moment (core/faultpoints.py); inert otherwise
            encryptor.finish()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {dest}: {_describe(err)}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_directory(dest.parent)


def _describe(err: OSError) -> str:
    """The OS reason plus the file it concerns, without a Python-style errno prefix."""
    reason = err.strerror or str(err)
    return f"{reason}: {err.filename}" if err.filename else reason


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable, so a power cut cannot bring back the old file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_file(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ArchiveError(f"cannot open {path}: no such file") from None
    except OSError as err:
        raise ArchiveError(f"cannot open {path}: {err.strerror or err}") from None


def read_archive_kind(path: Path) -> str:
    """The kind tag from the header; needs no key, so it is not authenticated."""
    path = Path(path)
    with _open_file(path) as source:
        try:
            return _read_header(source, path).kind
        except _Corrupted:
            raise WrongKeyOrCorrupted(path) from None


def _safe_member_path(member: tarfile.TarInfo) -> Path:
    """Relative path of a regular-file member; anything that could escape is corrupt."""
    if not member.isreg():
        raise _Corrupted  # links, devices, fifos, folders: never written by save_archive
    parts = PurePosixPath(member.name).parts
    if not parts or member.name.startswith("/") or ".." in parts:
        raise _Corrupted
    return Path(*parts)


def _extract(plaintext: BinaryIO, into: Path) -> None:
    """Unpack regular files only; creates nothing but folders and new files under ``into``."""
    try:
        with tarfile.open(fileobj=plaintext, mode="r|") as tar:
            for member in tar:
                target = into / _safe_member_path(member)
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as content, target.open("xb") as out:
                    shutil.copyfileobj(content, out)
    except (tarfile.TarError, FileExistsError, NotADirectoryError):
        raise _Corrupted from None
    while plaintext.read(CHUNK_SIZE):  # authenticate the tar padding and the final chunk
        pass


@contextmanager
def open_archive(path: Path, key: str) -> Iterator[Path]:
    """Yield a private temporary folder holding the decrypted files; removed on exit.

    Every chunk authenticates before its bytes are used, and a truncated or extended
    file is caught at the end, before the folder is handed out.
    """
    _require_key(key)
    path = Path(path)
    unpacked = Path(tempfile.mkdtemp(prefix="tao-archive-"))  # mode 0700
    try:
        try:
            with _open_file(path) as source:
                header = _read_header(source, path)
                decryptor = _ChunkDecryptor(source, header, _derive_cipher(key, header))
                _extract(decryptor, unpacked)
        except _Corrupted:
            raise WrongKeyOrCorrupted(path) from None
        except OSError as err:
            raise ArchiveError(
                f"cannot open {path}: {_describe(err)} while unpacking to {unpacked}"
            ) from None
        yield unpacked
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


# --- single files (resume checkpoints): the same header and chunks, a raw payload instead of a tar


class _EncryptingWriter:
    """What ``encrypt_stream`` yields: write() and a no-op flush(), as torch.save expects of a file."""

    def __init__(self, encryptor: _ChunkEncryptor) -> None:
        self.write = encryptor.write

    def flush(self) -> None:
        pass


@contextmanager
def encrypt_stream(out: BinaryIO, key: str, kind: str) -> Iterator[BinaryIO]:
    """A writable stream whose bytes reach ``out`` encrypted with ``key``, chunk by chunk (the
    plaintext is never whole in memory nor on disk). The file is complete, with its final chunk,
    only when the block exits without an exception."""
    _require_key(key)
    encryptor = _ChunkEncryptor(out, key, kind)
    yield _EncryptingWriter(encryptor)
    encryptor.finish()


def decrypt_file(path: Path, key: str, kinds: tuple[str, ...]) -> io.BytesIO:
    """The authenticated payload of a file written through ``encrypt_stream``, in memory (seekable,
    as torch.load needs); the plaintext never touches the disk.

    A wrong key, any change to the file, or a file of another kind is an ``ArchiveError``."""
    _require_key(key)
    path = Path(path)
    payload = io.BytesIO()
    with _open_file(path) as source:
        try:
            header = _read_header(source, path)
            if header.kind not in kinds:
                raise ArchiveError(f"cannot open {path}: a .{header.kind} file, not a {' or '.join(kinds)} file")
            decryptor = _ChunkDecryptor(source, header, _derive_cipher(key, header))
            while True:
                chunk = decryptor.read(CHUNK_SIZE)
                if not chunk:
                    break
                payload.write(chunk)
        except _Corrupted:
            raise WrongKeyOrCorrupted(path) from None
    payload.seek(0)
    return payload
