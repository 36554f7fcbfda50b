"""Encrypted archives: round trips, tamper detection, atomic saves, safe extraction."""

import io
import os
import struct
import tarfile
import tempfile
from pathlib import Path

import pytest

from tao_launcher.core import archive
from tao_launcher.errors import ArchiveError, UsageError

KEY = "correct horse battery staple"
WRONG_KEY = "hunter2-not-the-key"
REAL_SCRYPT_N = archive.SCRYPT_N
BIG_FILE_SIZE = 2 * archive.CHUNK_SIZE + 12345  # three chunks of plaintext


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch):
    """Full-cost scrypt only where a test asks for it; the format is the same."""
    monkeypatch.setattr(archive, "SCRYPT_N", 2**10)


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch):
    """Route tempfile into a folder the tests can inspect for leftovers."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_archive(tmp_path: Path, files: dict[str, bytes], kind: str = "tao") -> Path:
    dest = tmp_path / f"model.{kind}"
    archive.save_archive(write_tree(tmp_path / "model", files), dest, KEY, kind)
    return dest


def chunk_spans(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """Header length and each chunk's (start, end) byte range, length prefix included."""
    with path.open("rb") as source:
        header_length = len(archive._read_header(source, path).raw)
    data = path.read_bytes()
    spans, offset = [], header_length
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        spans.append((offset, offset + 4 + length))
        offset += 4 + length
    return header_length, spans


def corrupted_message(path: Path) -> str:
    return f"cannot open {path}: wrong key or corrupted file"


def assert_corrupted(path: Path, key: str = KEY) -> None:
    with pytest.raises(ArchiveError) as caught:
        with archive.open_archive(path, key):
            pass
    assert str(caught.value) == corrupted_message(path)


@pytest.fixture
def small_archive(tmp_path):
    return make_archive(tmp_path, {"manifest.json": b'{"task": "x"}', "a/b.txt": b"hello"})


@pytest.fixture
def big_archive(tmp_path):
    return make_archive(tmp_path, {"manifest.json": b"{}", "w.bin": os.urandom(BIG_FILE_SIZE)})


def test_round_trip_keeps_nested_files_across_chunks(tmp_path):
    files = {
        "manifest.json": b'{"task": "text_classification"}',
        "sub/deeper/weights.bin": os.urandom(BIG_FILE_SIZE),
        "sub/empty.txt": b"",
        "vocab/données.txt": "é\n".encode(),
    }
    dest = make_archive(tmp_path, files)

    assert len(chunk_spans(dest)[1]) == 3
    with archive.open_archive(dest, KEY) as folder:
        assert read_tree(folder) == files


def test_round_trip_of_empty_folder(tmp_path):
    dest = make_archive(tmp_path, {})

    with archive.open_archive(dest, KEY) as folder:
        assert list(folder.iterdir()) == []


def test_symlinked_file_is_stored_as_its_content(tmp_path):
    source = write_tree(tmp_path / "model", {"real.bin": b"weights"})
    (source / "link.bin").symlink_to(source / "real.bin")
    dest = tmp_path / "model.tao"
    archive.save_archive(source, dest, KEY, "tao")

    with archive.open_archive(dest, KEY) as folder:
        assert not (folder / "link.bin").is_symlink()
        assert read_tree(folder) == {"real.bin": b"weights", "link.bin": b"weights"}


def test_real_scrypt_parameters_are_written_and_read(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "SCRYPT_N", REAL_SCRYPT_N)
    dest = make_archive(tmp_path, {"manifest.json": b"{}"})

    with dest.open("rb") as source:
        header = archive._read_header(source, dest)
    assert (2**header.log2_n, header.r, header.p) == (2**15, 8, 1)
    with archive.open_archive(dest, KEY) as folder:
        assert read_tree(folder) == {"manifest.json": b"{}"}


def test_reading_uses_the_cost_stored_in_the_header(small_archive, monkeypatch):
    monkeypatch.setattr(archive, "SCRYPT_N", 2**12)

    with archive.open_archive(small_archive, KEY) as folder:
        assert (folder / "a/b.txt").read_bytes() == b"hello"


def test_absurd_scrypt_cost_in_header_is_refused(small_archive):
    data = bytearray(small_archive.read_bytes())
    log2_n_offset = 8 + 2 + 1 + len("tao") + 1
    assert data[log2_n_offset] == 10
    data[log2_n_offset] = 21  # 2**21 > the 2**20 cap
    small_archive.write_bytes(bytes(data))

    assert_corrupted(small_archive)


def test_wrong_key_names_neither_key(small_archive):
    with pytest.raises(ArchiveError) as caught:
        with archive.open_archive(small_archive, WRONG_KEY):
            pass

    error = caught.value
    assert str(error) == corrupted_message(small_archive)
    assert error.__cause__ is None and error.__suppress_context__
    chain, link = [], error
    while link is not None:
        chain.append(repr(link))
        link = link.__context__
    assert not any(KEY in text or WRONG_KEY in text for text in chain)


def test_empty_key_is_a_usage_error(tmp_path, small_archive):
    message = "an encryption key is required: pass -k KEY or set TAO_KEY"
    with pytest.raises(UsageError, match=message):
        archive.save_archive(tmp_path / "model", tmp_path / "other.tao", "", "tao")
    with pytest.raises(UsageError, match=message):
        with archive.open_archive(small_archive, ""):
            pass
    assert not (tmp_path / "other.tao").exists()


@pytest.mark.parametrize("where", ["kind", "salt", "nonce prefix", "chunk length",
                                  "body middle", "last byte"])
def test_any_flipped_byte_reads_as_corrupted(big_archive, where):
    header_length, spans = chunk_spans(big_archive)
    offsets = {
        "kind": 11,
        "salt": header_length - 7 - 1,
        "nonce prefix": header_length - 1,
        "chunk length": spans[1][0] + 3,
        "body middle": (header_length + big_archive.stat().st_size) // 2,
        "last byte": big_archive.stat().st_size - 1,
    }
    data = bytearray(big_archive.read_bytes())
    data[offsets[where]] ^= 0x01
    big_archive.write_bytes(bytes(data))

    assert_corrupted(big_archive)


@pytest.mark.parametrize("cut", ["last byte", "final chunk", "inside header", "all chunks"])
def test_truncated_file_reads_as_corrupted(big_archive, cut):
    header_length, spans = chunk_spans(big_archive)
    keep = {
        "last byte": big_archive.stat().st_size - 1,
        "final chunk": spans[-1][0],
        "inside header": header_length - 3,
        "all chunks": header_length,
    }[cut]
    with big_archive.open("r+b") as handle:
        handle.truncate(keep)

    assert_corrupted(big_archive)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00\x10", "copy of final chunk"])
def test_appended_bytes_read_as_corrupted(big_archive, extra):
    _, spans = chunk_spans(big_archive)
    data = big_archive.read_bytes()
    if extra == "copy of final chunk":
        extra = data[spans[-1][0]:spans[-1][1]]
    big_archive.write_bytes(data + extra)

    assert_corrupted(big_archive)


def test_reordered_chunks_read_as_corrupted(big_archive):
    header_length, spans = chunk_spans(big_archive)
    data = big_archive.read_bytes()
    (a_start, a_end), (b_start, b_end) = spans[0], spans[1]
    big_archive.write_bytes(data[:a_start] + data[b_start:b_end] + data[a_start:a_end]
                            + data[b_end:])

    assert_corrupted(big_archive)


def assert_both_readers_refuse(path, message):
    """open_archive and read_archive_kind give the same one-sentence error."""
    with pytest.raises(ArchiveError) as caught:
        with archive.open_archive(path, KEY):
            pass
    assert str(caught.value) == message
    with pytest.raises(ArchiveError) as caught:
        archive.read_archive_kind(path)
    assert str(caught.value) == message


@pytest.mark.parametrize("content", [b"", b"TAO", os.urandom(4096)])
def test_other_files_have_a_bad_header(tmp_path, content):
    path = tmp_path / "garbage.tao"
    path.write_bytes(content)
    assert_both_readers_refuse(path, f"cannot open {path}: not a tao archive (bad header)")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.tao"
    assert_both_readers_refuse(path, f"cannot open {path}: no such file")


def test_newer_format_version_asks_for_a_newer_tao(small_archive):
    data = bytearray(small_archive.read_bytes())
    data[8:10] = struct.pack(">H", 2)
    small_archive.write_bytes(bytes(data))

    with pytest.raises(ArchiveError) as caught:
        with archive.open_archive(small_archive, KEY):
            pass
    assert "version 2" in str(caught.value)
    assert "a newer tao is needed" in str(caught.value)


@pytest.mark.parametrize("kind", ["tao", "riva", "eonnx"])
def test_read_archive_kind_needs_no_key(tmp_path, kind):
    dest = make_archive(tmp_path, {"manifest.json": b"{}"}, kind=kind)

    assert archive.read_archive_kind(dest) == kind


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_archive_and_no_partial(tmp_path, monkeypatch, failure):
    dest = make_archive(tmp_path, {"version.txt": b"old"})
    write_tree(tmp_path / "model", {"version.txt": b"new", "w.bin": os.urandom(BIG_FILE_SIZE)})
    real_write_chunk = archive._ChunkEncryptor._write_chunk
    calls = []

    def fail_on_second_chunk(self, final):
        calls.append(final)
        if len(calls) == 2:
            raise failure
        real_write_chunk(self, final)

    monkeypatch.setattr(archive._ChunkEncryptor, "_write_chunk", fail_on_second_chunk)
    with pytest.raises(type(failure)):
        archive.save_archive(tmp_path / "model", dest, KEY, "tao")

    assert calls[:2] == [False, False]  # it failed midway, with a chunk already on disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.tao", "scratch"]
    with archive.open_archive(dest, KEY) as folder:
        assert read_tree(folder) == {"version.txt": b"old"}


def test_successful_save_replaces_the_old_archive(tmp_path):
    dest = make_archive(tmp_path, {"version.txt": b"old"})
    make_archive(tmp_path, {"version.txt": b"new"})

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.tao", "scratch"]
    with archive.open_archive(dest, KEY) as folder:
        assert read_tree(folder)["version.txt"] == b"new"


def test_saving_a_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(ArchiveError, match="is not a folder"):
        archive.save_archive(tmp_path / "absent", tmp_path / "model.tao", KEY, "tao")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"]


def test_open_archive_folder_is_private_and_removed(small_archive, scratch):
    before = sorted(small_archive.parent.iterdir())
    with archive.open_archive(small_archive, KEY) as folder:
        assert folder.parent == scratch
        assert folder.stat().st_mode & 0o777 == 0o700
    assert not folder.exists()
    with pytest.raises(ZeroDivisionError):
        with archive.open_archive(small_archive, KEY) as folder:
            1 / 0
    assert not folder.exists()
    assert list(scratch.iterdir()) == []
    assert sorted(small_archive.parent.iterdir()) == before


def test_failed_open_leaves_no_temporary_files(big_archive, scratch):
    with big_archive.open("r+b") as handle:
        handle.truncate(big_archive.stat().st_size - 1)

    assert_corrupted(big_archive)
    assert list(scratch.iterdir()) == []


def regular(name: str, content: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def special(name: str, member_type: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = member_type
    info.linkname = linkname
    return info, None


def write_crafted_archive(path: Path, members: list) -> None:
    """An archive sealed with the right key whose tar says whatever the test wants."""
    with path.open("wb") as out:
        encryptor = archive._ChunkEncryptor(out, KEY, "tao")
        with tarfile.open(fileobj=encryptor, mode="w|") as tar:
            for info, content in members:
                tar.addfile(info, io.BytesIO(content) if content is not None else None)
        encryptor.finish()


def test_crafted_archive_with_safe_members_opens(tmp_path):
    path = tmp_path / "crafted.tao"
    write_crafted_archive(path, [regular("manifest.json", b"{}"), regular("a/b", b"x")])

    with archive.open_archive(path, KEY) as folder:
        assert read_tree(folder) == {"manifest.json": b"{}", "a/b": b"x"}


@pytest.mark.parametrize("tamper", ["flip last byte", "append a byte"])
def test_chunks_past_the_end_of_the_tar_are_still_checked(tmp_path, tamper):
    """The tar reader stops at its end marker; the final chunk must authenticate anyway."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info, content = regular("manifest.json", b"{}")
        tar.addfile(info, io.BytesIO(content))
    path = tmp_path / "padded.tao"
    with path.open("wb") as out:
        encryptor = archive._ChunkEncryptor(out, KEY, "tao")
        encryptor.write(tar_bytes.getvalue().ljust(archive.CHUNK_SIZE + 100, b"\0"))
        encryptor.finish()
    with archive.open_archive(path, KEY) as folder:
        assert read_tree(folder) == {"manifest.json": b"{}"}

    data = bytearray(path.read_bytes())
    if tamper == "flip last byte":
        data[-1] ^= 0x01
    else:
        data.append(0)
    path.write_bytes(bytes(data))

    assert_corrupted(path)


@pytest.mark.parametrize("bad_member", [
    regular("../evil"),
    regular("sub/../../evil"),
    regular("/tmp/evil"),
    regular("manifest.json"),  # a second member with the same name
    special("evil", tarfile.SYMTYPE, linkname="../../evil"),
    special("evil", tarfile.LNKTYPE, linkname="manifest.json"),
    special("evil", tarfile.CHRTYPE),
    special("evil", tarfile.FIFOTYPE),
    special("evil", tarfile.DIRTYPE),
], ids=lambda member: f"{member[0].name}-{member[0].type.decode()}")
def test_unsafe_members_are_rejected_and_nothing_escapes(tmp_path, scratch, bad_member):
    path = tmp_path / "crafted.tao"
    write_crafted_archive(path, [regular("manifest.json", b"{}"), bad_member])
    with path.open("rb") as source:
        header = archive._read_header(source, path)
        plaintext = archive._ChunkDecryptor(source, header, archive._derive_cipher(KEY, header))
        with tarfile.open(fileobj=plaintext, mode="r|") as tar:
            assert [m.name for m in tar][-1] == bad_member[0].name  # really in there

    assert_corrupted(path)
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.tao", "scratch"]
    assert not Path("/tmp/evil").exists()
