"""The ant-side object store client on both backends: streaming round trips, hashing, keys."""

import hashlib
import os

import pytest

from ants.artifact_store import UnsafePath, inside, safe_relpath
from tests.artifacts.conftest import stored_keys


def test_round_trip_with_sha256(raw_store, tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    stored = raw_store.put_file("org-1/5/build/abc/dist/app.bin", src, "application/octet-stream")
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert raw_store.exists("org-1/5/build/abc/dist/app.bin")
    dest = tmp_path / "dest.bin"
    assert raw_store.get_file("org-1/5/build/abc/dist/app.bin", dest) == len(data)
    assert dest.read_bytes() == data
    assert b"".join(raw_store.iter_chunks("org-1/5/build/abc/dist/app.bin", 65536)) == data
    raw_store.delete("org-1/5/build/abc/dist/app.bin")
    assert not raw_store.exists("org-1/5/build/abc/dist/app.bin")
    assert stored_keys(raw_store) == []


def test_put_bytes_creates_its_folders_and_replaces_an_object_whole(raw_store, tmp_path):
    key = "org-1/logs/2026-11-27/5-abc-build.log"
    first = raw_store.put_bytes(key, b"first version, the longer one\n")
    assert first.size == 30 and raw_store.exists(key)
    again = raw_store.put_bytes(key, b"second\n")  # a known key: replaced whole, never mixed
    assert (again.size, again.sha256) == (7, hashlib.sha256(b"second\n").hexdigest())
    assert b"".join(raw_store.iter_chunks(key)) == b"second\n"
    assert stored_keys(raw_store) == [key]


def test_multipart_upload_for_large_objects(raw_store, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(20):
            fh.write(os.urandom(1024 * 1024))
    stored = raw_store.put_file("org-1/big.bin", src)
    dest = tmp_path / "back.bin"
    raw_store.get_file("org-1/big.bin", dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == stored.sha256


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "a\\..\\b", "C:/x", "a/\x00"])
def test_unsafe_keys_are_refused(raw_store, tmp_path, key):
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(UnsafePath):
        raw_store.put_file(key, src)
    assert stored_keys(raw_store) == []


def test_safe_relpath_normalises():
    assert safe_relpath("./a//b/./c") == "a/b/c"
    for bad in ("..", "a/..", "/a", "", "   ", "./"):
        with pytest.raises(UnsafePath):
            safe_relpath(bad)


def test_inside_refuses_symlinks_leading_out(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "out").symlink_to("/etc")
    (work / "in").symlink_to(work / "sub")
    with pytest.raises(UnsafePath, match="outside"):
        inside(work, "out/passwd")
    assert inside(work, "in/x") == (work / "sub" / "x").resolve()
