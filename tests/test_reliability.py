"""Reliability, round two: damaged or hostile key files, the salted slow fingerprint and
the authentication tag, error lines that name their file."""
import json
import os
import time

import numpy as np
import pytest

from ppdnn import errors
from ppdnn.ciphers import auth, keyfile




# ------------------------------------------------------------ hostile key files
@pytest.mark.parametrize("text, needle", [
    ('{"format": ' + "9" * 5001 + "}", "damaged JSON"),
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ('{"format": "ppdnn-cipher-key", "version": NaN}', "damaged JSON"),
    (b"\xff\xfe{}", "damaged JSON"),
    ('{"format": "ppdnn-cipher-key", "version": 1, "shape": "32x32", "key": {}}', "checksum mismatch"),
])
def test_a_hostile_key_file_is_one_line_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "key.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=needle) as err:
        keyfile.read(path)
    line = errors.one_line(err.value)
    assert str(path) in line and len(line) < 400


def test_a_checksummed_key_with_a_bad_shape_is_named(tmp_path):
    body = {"format": keyfile.KEY_FORMAT, "version": 1, "scheme": "plain", "shape": [10 ** 30, 2],
            "key": {}}
    body["sha256"] = keyfile.checksum(body)
    (tmp_path / "key.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"key.json: key file is damaged \(shape"):
        keyfile.read(tmp_path / "key.json")


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_key_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind, no_hang):
    path = tmp_path / "key.json"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    with pytest.raises(ValueError, match=f"key file {path} is .*not a regular file"):
        keyfile.read(path)


def test_key_material_bytes_are_unchanged_by_the_key_file_round_trip(tmp_path):
    material = {"perm": np.arange(16, dtype=np.uint16), "nonce": b"\x01\x02"}
    keyfile.write(tmp_path / "k.json", "toy", (4, 4), material, None, overwrite=False)
    body = keyfile.read(tmp_path / "k.json")
    assert keyfile.material_bytes("toy", body["shape"], body["material"]) == \
        keyfile.material_bytes("toy", (4, 4), material)
    assert os.stat(tmp_path / "k.json").st_mode & 0o777 == 0o600


# ------------------------------------------------------------ fingerprint and tag
# canonical key bytes as keyfile.material_bytes makes them (spelled out: the test of auth
# must not depend on keyfile)
MATERIAL = b"ppdnn-key-material\0" + json.dumps({"key": {"perm": list(range(16))}}).encode()
OTHER = b"ppdnn-key-material\0" + json.dumps({"key": {"perm": list(range(16))[::-1]}}).encode()


def test_the_fingerprint_is_salted_and_identifies_its_key():
    first, second = auth.fingerprint(MATERIAL), auth.fingerprint(MATERIAL)
    assert first != second and auth.is_fingerprint(first)
    assert auth.fingerprint_matches(first, MATERIAL) and auth.fingerprint_matches(second, MATERIAL)
    assert not auth.fingerprint_matches(first, OTHER)
    assert not auth.fingerprint_matches("0123456789abcdef", MATERIAL)  # the old unsalted form
    salt = bytes(range(auth.SALT_BYTES))
    assert auth.fingerprint(MATERIAL, salt=salt) == auth.fingerprint(MATERIAL, salt=salt)


def test_checking_a_guess_costs_a_slow_derivation():
    fp = auth.fingerprint(MATERIAL)
    start = time.perf_counter()
    for i in range(3):  # what a seed scan does: fresh material per guess
        auth.fingerprint_matches(fp, MATERIAL + bytes([i]))
    assert (time.perf_counter() - start) / 3 > 0.03  # the unsalted SHA-256 took microseconds


def test_the_tag_catches_a_wrong_key_forgery_and_tampering():
    ciphertext = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
    fp = auth.fingerprint(MATERIAL)
    tag = auth.tag(MATERIAL, auth.images_payload([ciphertext]), fp)
    assert auth.check_tag(MATERIAL, auth.images_payload([ciphertext]), fp, tag)
    assert not auth.check_tag(OTHER, auth.images_payload([ciphertext]), fp, tag)  # wrong key
    plaintext = np.zeros_like(ciphertext)  # a plaintext given the real key's fingerprint and tag
    assert not auth.check_tag(MATERIAL, auth.images_payload([plaintext]), fp, tag)
    tampered = ciphertext.copy()
    tampered[0, 0, 0, 0] ^= 1
    assert not auth.check_tag(MATERIAL, auth.images_payload([tampered]), fp, tag)
    other_fp = auth.fingerprint(MATERIAL)  # a tag is bound to the fingerprint beside it
    assert not auth.check_tag(MATERIAL, auth.images_payload([ciphertext]), other_fp, tag)
    assert not auth.check_tag(MATERIAL, auth.images_payload([ciphertext]), fp, "hs1$" + "0" * 64)
    assert not auth.check_tag(MATERIAL, auth.images_payload([ciphertext]), "junk", tag)


def test_auth_rejects_bad_arguments_by_name():
    with pytest.raises(TypeError, match="material must be non-empty bytes"):
        auth.fingerprint("a string")
    with pytest.raises(ValueError, match="salt must be"):
        auth.fingerprint(MATERIAL, salt=b"short")
    with pytest.raises(ValueError, match="not a key fingerprint"):
        auth.tag(MATERIAL, b"x", "0123456789abcdef")
