"""The lifecycle sub-commands: keygen, encrypt-model, decrypt-model, switch-key, rekey, inspect."""
from __future__ import annotations

import argparse
import os
import stat

import numpy as np
import pytest

import he_core
from henn import lifecycle as lc
from henn.cli import lifecycle as cli

INSECURE = "--allow-insecure"  # the plain scheme used here gives no security: its files load only when asked
WEIGHTS = {"0.weight": np.array([[1.0, -2.0], [0.5, 0.0], [-0.25, 4.0]]), "0.bias": np.array([[0.0, -1.5]])}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def setup(tmp_path, capsys):
    """An owner with a plaintext model and two key directories A and B."""
    lc.write_plain_model(tmp_path / "plain.npz", lc.PlainModel(WEIGHTS, {"arch": "mlp"}))
    for label in ("A", "B"):
        code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / label,
                           "--model", tmp_path / "plain.npz")
        assert code == 0, err
    return tmp_path


def encrypt(capsys, setup, *extra) -> tuple[int, str, str]:
    """The owner encrypts plain.npz under key directory A into m.henn."""
    return run(capsys, "encrypt-model", "--model", setup / "plain.npz", "--keys", setup / "A", "--out",
               setup / "m.henn", INSECURE, *extra)


def key_id(directory) -> str:
    return lc.load_public(directory, allow_insecure=True)[1].key_id


def test_add_parsers_registers_every_command():
    parser = argparse.ArgumentParser()
    subs = parser.add_subparsers(dest="command")
    cli.add_parsers(subs)
    assert {"keygen", "encrypt-model", "decrypt-model", "switch-key", "rekey", "inspect"} <= set(subs.choices)
    args = parser.parse_args(["inspect", "x.henn"])
    assert callable(args.func)


def test_the_henn_dispatcher_runs_the_lifecycle_commands(tmp_path, capsys):
    from henn import cli as henn_cli
    assert henn_cli.main(["keygen", "--scheme", "plain", "--out", str(tmp_path / "k")]) == 0
    assert "public keys (share them)" in capsys.readouterr().out
    assert henn_cli.main(["keygen", "--scheme", "plain", "--out", str(tmp_path / "k")]) == cli.EXIT_ERROR


def test_keygen_files_and_sizes_from_the_model(setup):
    assert sorted(os.listdir(setup / "A")) == [lc.PUBLIC_FILE, lc.SECRET_FILE]
    assert stat.S_IMODE(os.stat(setup / "A" / lc.SECRET_FILE).st_mode) == 0o600
    assert lc.load_public(setup / "A", allow_insecure=True)[1].requirements.sizes == (1, 2)


def test_keygen_twice_is_refused_without_force(setup, capsys):
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", setup / "A")
    assert code == cli.EXIT_ERROR and "already holds a secret key" in err
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", setup / "A", "--force")
    assert code == 0, err


def test_keygen_with_parameters(tmp_path, capsys):
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "k", "--param", "precision_bits=12")
    assert code == 0, err
    scheme, _ = lc.load_public(tmp_path / "k", allow_insecure=True)
    assert scheme.params.precision_bits == 12
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "k2", "--param", "nope=1")
    assert code == cli.EXIT_ERROR and "nope" in err
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "k3", "--param", "bits")
    assert code == cli.EXIT_ERROR and "NAME=VALUE" in err


def test_unknown_scheme_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "keygen", "--scheme", "rot13", "--out", tmp_path / "k")
    assert code == cli.EXIT_ERROR and "unknown scheme 'rot13'" in err


def test_encrypt_decrypt_round_trip(setup, capsys):
    code, out, err = run(capsys, "encrypt-model", "--model", setup / "plain.npz", "--keys", setup / "A",
                         "--out", setup / "m.henn", INSECURE)
    assert code == 0, err
    assert key_id(setup / "A") in out
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "A",
                       "--out", setup / "back.npz", INSECURE)
    assert code == 0, err
    back = lc.read_plain_model(setup / "back.npz")
    assert back.meta == {"arch": "mlp"}
    for name, array in WEIGHTS.items():
        np.testing.assert_array_equal(back.arrays[name], array)


def test_wrong_key_directory_names_both_key_ids(setup, capsys):
    encrypt(capsys, setup)
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "B",
                       "--out", setup / "back.npz", INSECURE)
    assert code == cli.EXIT_ERROR
    assert key_id(setup / "A") in err and key_id(setup / "B") in err and "henn decrypt-model: error" in err
    assert not (setup / "back.npz").exists()
    code, _, err = run(capsys, "rekey", "--model", setup / "m.henn", "--from", setup / "B", "--to", setup / "A",
                       "--out", setup / "x.henn", INSECURE)
    assert code == cli.EXIT_ERROR and key_id(setup / "A") in err and key_id(setup / "B") in err


def test_owner_rekey_then_decrypt_under_the_new_key(setup, capsys):
    encrypt(capsys, setup)
    code, out, err = run(capsys, "rekey", "--model", setup / "m.henn", "--from", setup / "A", "--to", setup / "B",
                         "--out", setup / "mB.henn", INSECURE)
    assert code == 0, err and "without decryption" in out
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "mB.henn", "--keys", setup / "A",
                       "--out", setup / "back.npz", INSECURE)
    assert code == cli.EXIT_ERROR
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "mB.henn", "--keys", setup / "B",
                       "--out", setup / "back.npz", INSECURE)
    assert code == 0, err
    np.testing.assert_array_equal(lc.read_plain_model(setup / "back.npz").arrays["0.weight"], WEIGHTS["0.weight"])


def test_trainer_side_rekey_never_touches_a_secret_key(setup, capsys):
    encrypt(capsys, setup)
    code, _, err = run(capsys, "switch-key", "--from", setup / "A", "--to", setup / "B", "--out", setup / "s.henn",
                       INSECURE)
    assert code == 0, err
    # The re-keying party gets only B's public file; a decoy secret file next to it is garbage,
    # so any attempt to read it would fail the command.
    party = setup / "party"
    party.mkdir()
    (party / lc.PUBLIC_FILE).write_bytes((setup / "B" / lc.PUBLIC_FILE).read_bytes())
    (party / lc.SECRET_FILE).write_bytes(b"decoy: not a key")
    code, out, err = run(capsys, "rekey", "--model", setup / "m.henn", "--switch-key", setup / "s.henn",
                         "--to", party, "--out", setup / "mB.henn", INSECURE)
    assert code == 0, err
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "mB.henn", "--keys", setup / "B",
                       "--out", setup / "back.npz", INSECURE)
    assert code == 0, err
    # And the owner-side commands do read that secret file, so the decoy is a real trap.
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "mB.henn", "--keys", party,
                       "--out", setup / "back2.npz", INSECURE)
    assert code == cli.EXIT_ERROR and "bad magic" in err


def test_encrypt_with_public_key_needs_no_secret_file(setup, capsys):
    os.remove(setup / "A" / lc.SECRET_FILE)  # plain encrypts with the public key alone
    code, _, err = run(capsys, "encrypt-model", "--model", setup / "plain.npz", "--keys", setup / "A",
                       "--out", setup / "m.henn", INSECURE)
    assert code == 0, err


def test_inspect_describes_without_key_material(setup, capsys):
    encrypt(capsys, setup)
    code, out, _ = run(capsys, "inspect", setup / "m.henn")
    assert code == 0 and "0.weight: (3, 2)" in out and key_id(setup / "A") in out and "scheme plain" in out
    code, _, err = run(capsys, "inspect", setup / "plain.npz")
    assert code == cli.EXIT_ERROR and "bad magic" in err


def test_corrupt_model_file_is_a_one_line_error(setup, capsys):
    encrypt(capsys, setup)
    data = bytearray((setup / "m.henn").read_bytes())
    data[100] ^= 1
    (setup / "m.henn").write_bytes(bytes(data))
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "A",
                       "--out", setup / "back.npz", INSECURE)
    assert code == cli.EXIT_ERROR and "digest mismatch" in err and "Traceback" not in err


def test_missing_files_are_clear_errors(tmp_path, capsys):
    code, _, err = run(capsys, "encrypt-model", "--model", tmp_path / "nope.npz", "--keys", tmp_path,
                       "--out", tmp_path / "m.henn", INSECURE)
    assert code == cli.EXIT_ERROR and "nope.npz" in err


def test_keygen_for_every_available_scheme(tmp_path, capsys):
    for name in he_core.available_schemes() if _registry_ok() else ["plain"]:
        code, out, err = run(capsys, "keygen", "--scheme", name, "--out", tmp_path / name, "--sizes", "1", "3")
        assert code == 0, err
        assert lc.load_public(tmp_path / name, allow_insecure=True)[1].scheme == name


def _registry_ok() -> bool:
    try:
        he_core.available_schemes()
    except Exception:  # noqa: BLE001 - a half-written scheme elsewhere
        return False
    return True


# --- the owner's identity, passphrases, signatures, insecure parameters, migration -----------------
@pytest.fixture
def owner(tmp_path, capsys):
    """An owner directory whose signing key is encrypted under the passphrase in tmp/pass."""
    (tmp_path / "pass").write_bytes(b"owner passphrase\n")
    os.chmod(tmp_path / "pass", 0o600)
    code, _, err = run(capsys, "owner", "init", "--out", tmp_path / "me", "--passphrase-file", tmp_path / "pass")
    assert code == 0, err
    return tmp_path


def one_line_error(code: int, err: str, command: str) -> str:
    """The failure contract: exit 1 and exactly one line, no traceback."""
    assert code == cli.EXIT_ERROR and err.startswith(f"henn {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_owner_init_prints_the_fingerprint_and_never_overwrites(owner, capsys):
    fingerprint = lc.load_owner_key(owner / "me").fingerprint
    code, out, err = run(capsys, "owner", "init", "--out", owner / "me2")
    assert code == 0 and f"fingerprint {lc.load_owner_key(owner / 'me2').fingerprint}" in out
    assert stat.S_IMODE(os.stat(owner / "me2" / lc.SIGNING_KEY_FILE).st_mode) == 0o600
    code, _, err = run(capsys, "owner", "init", "--out", owner / "me")
    assert "exists" in one_line_error(code, err, "owner init")
    assert lc.load_owner_key(owner / "me").fingerprint == fingerprint


def test_signed_and_sealed_owner_workflow(owner, capsys, setup):
    pw = ("--passphrase-file", owner / "pass")
    code, out, err = run(capsys, "keygen", "--scheme", "plain", "--out", owner / "S", "--model", owner / "plain.npz",
                         "--owner", owner / "me", *pw)
    assert code == 0 and "signed by owner key" in out and "sealed with the passphrase" in out, err
    code, out, err = run(capsys, "encrypt-model", "--model", owner / "plain.npz", "--keys", owner / "S", "--out",
                         owner / "m.henn", INSECURE, "--owner", owner / "me", *pw)
    assert code == 0 and "signed by owner key" in out, err
    code, out, _ = run(capsys, "inspect", owner / "m.henn", "--owner", owner / "me" / lc.OWNER_PUB_FILE)
    assert code == 0 and "(verified)" in out and "INSECURE parameters" in out
    code, _, err = run(capsys, "decrypt-model", "--model", owner / "m.henn", "--keys", owner / "S", "--out",
                       owner / "back.npz", INSECURE)
    assert "--passphrase-file" in one_line_error(code, err, "decrypt-model")
    code, _, err = run(capsys, "decrypt-model", "--model", owner / "m.henn", "--keys", owner / "S", "--out",
                       owner / "back.npz", INSECURE, *pw)
    assert code == 0, err
    np.testing.assert_array_equal(lc.read_plain_model(owner / "back.npz").arrays["0.weight"], WEIGHTS["0.weight"])
    code, out, _ = run(capsys, "inspect", owner / "S" / lc.SECRET_FILE)
    assert code == 0 and "sealed under a passphrase" in out and "not signed" in out
    code, _, err = run(capsys, "inspect", owner / "S" / lc.SECRET_FILE, "--owner", owner / "me")
    assert "not signed" in one_line_error(code, err, "inspect")  # keygen signs public.henn only
    code, out, _ = run(capsys, "inspect", owner / "S" / lc.PUBLIC_FILE, "--owner", owner / "me")
    assert code == 0 and "(verified)" in out and "key id NOT derived" not in out


def test_owner_commands_refuse_unsigned_keys_and_insecure_files(owner, capsys, setup):
    pw = ("--passphrase-file", owner / "pass")
    code, _, err = run(capsys, "encrypt-model", "--model", setup / "plain.npz", "--keys", setup / "A", "--out",
                       setup / "m.henn", INSECURE, "--owner", owner / "me", *pw)
    assert "not signed" in one_line_error(code, err, "encrypt-model")
    code, _, err = encrypt(capsys, setup)
    assert code == 0, err
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "A", "--out",
                       setup / "back.npz")
    assert "insecure parameters" in one_line_error(code, err, "decrypt-model") and "--allow-insecure" in err


def test_rekey_party_checks_the_owners_signatures(owner, capsys, setup):
    pw = ("--passphrase-file", owner / "pass")
    encrypt(capsys, setup)
    code, _, err = run(capsys, "switch-key", "--from", setup / "A", "--to", setup / "B", "--out", setup / "s.henn",
                       INSECURE, "--owner", owner / "me", *pw)
    assert code == 0, err
    rekey = ("rekey", "--model", setup / "m.henn", "--switch-key", setup / "s.henn", "--to", setup / "B",
             "--out", setup / "mB.henn", INSECURE, "--owner", owner / "me" / lc.OWNER_PUB_FILE)
    code, _, err = run(capsys, *rekey)  # B's public.henn was not signed by the owner
    assert "not signed" in one_line_error(code, err, "rekey")
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", setup / "B", "--model", setup / "plain.npz",
                       "--force", "--owner", owner / "me", *pw)
    assert code == 0, err
    code, _, err = run(capsys, *rekey)  # now signed, but the switch key leads to B's old key
    assert "leads to key" in one_line_error(code, err, "rekey")


@pytest.mark.parametrize("content,match", [(b"", "first line is empty"), (b"\nsecond", "first line is empty")])
def test_bad_passphrase_files_are_one_line_errors(tmp_path, capsys, content, match):
    (tmp_path / "pass").write_bytes(content)
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "k", "--passphrase-file",
                       tmp_path / "pass")
    assert match in one_line_error(code, err, "keygen")
    assert not (tmp_path / "k" / lc.SECRET_FILE).exists()
    code, _, err = run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "k", "--passphrase-file",
                       tmp_path / "missing")
    assert "missing" in one_line_error(code, err, "keygen")


def test_a_readable_passphrase_file_warns(tmp_path):
    (tmp_path / "pass").write_bytes(b"pw\n")
    os.chmod(tmp_path / "pass", 0o644)
    with pytest.warns(he_core.SecurityWarning, match="readable by other users"):
        assert cli.main(["keygen", "--scheme", "plain", "--out", str(tmp_path / "k"), "--passphrase-file",
                         str(tmp_path / "pass")]) == 0


@pytest.mark.parametrize("argv", [["owner"], ["owner", "init"], ["migrate"], ["migrate", "--keys"],
                                  ["keygen", "--scheme", "plain", "--out", "k", "--passphrase-file"],
                                  ["inspect", "f", "--owner"], ["decrypt-model", "--allow-insecure=1"]])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def _as_legacy(keys, models, old_id: str) -> None:
    """Rewrite files as a release before derived key ids and signatures left them (random id, version 1)."""
    import dataclasses
    import hashlib
    import struct

    from he_core import serialization as ser

    def v1(blob: bytes) -> bytes:
        body = bytearray(blob[:-32])
        struct.pack_into("<H", body, 8, 1)
        return bytes(body) + hashlib.sha256(body).digest()
    for name in (lc.PUBLIC_FILE, lc.SECRET_FILE):
        obj = ser.load(keys / name, allow_insecure=True)
        (keys / name).write_bytes(v1(ser.dumps(dataclasses.replace(obj, key_id=old_id))))
    for path in models:
        bundle = ser.load(path, allow_insecure=True)
        cts = {n: ct.replace(key_id=old_id) for n, ct in bundle.ciphertexts.items()}
        public = dataclasses.replace(bundle.public, key_id=old_id)
        path.write_bytes(v1(ser.dumps(ser.Bundle(cts, dict(bundle.meta, key_history=[old_id]), public))))


def test_migrate_end_to_end(owner, capsys, setup):
    pw = ("--passphrase-file", owner / "pass")
    encrypt(capsys, setup)
    new_id = key_id(setup / "A")
    _as_legacy(setup / "A", [setup / "m.henn"], "0123456789abcdef" * 2)
    code, out, _ = run(capsys, "inspect", setup / "A" / lc.PUBLIC_FILE)
    assert code == 0 and "format version 1" in out and "NOT derived" in out
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "A",
                       "--out", setup / "back.npz", INSECURE)
    assert "henn migrate" in one_line_error(code, err, "decrypt-model")

    code, out, err = run(capsys, "migrate", "--keys", setup / "A", "--model", setup / "m.henn", "--owner",
                         owner / "me", *pw, INSECURE)
    assert code == 0, err
    assert f"key id {'0123456789abcdef' * 2} -> {new_id}" in out and "sealed" in out and str(setup / "m.henn") in out
    code, _, err = run(capsys, "decrypt-model", "--model", setup / "m.henn", "--keys", setup / "A",
                       "--out", setup / "back.npz", INSECURE, *pw)
    assert code == 0, err
    np.testing.assert_array_equal(lc.read_plain_model(setup / "back.npz").arrays["0.weight"], WEIGHTS["0.weight"])
    owner_key = lc.load_owner_key(owner / "me")
    assert lc.load_encrypted_model(setup / "m.henn", owner_key=owner_key, allow_insecure=True).key_id == new_id
    assert lc.load_public(setup / "A", owner_key=owner_key, allow_insecure=True)[1].key_id == new_id


def test_migrate_failures_are_one_line(owner, capsys, setup):
    encrypt(capsys, setup)
    _as_legacy(setup / "A", [setup / "m.henn"], "a" * 32)
    _as_legacy(setup / "B", [], "b" * 32)
    code, _, err = run(capsys, "migrate", "--keys", setup / "B", "--model", setup / "m.henn", INSECURE)
    assert "is not the key directory's" in one_line_error(code, err, "migrate")
    code, _, err = run(capsys, "migrate", "--keys", setup / "A")
    assert "insecure parameters" in one_line_error(code, err, "migrate")
    (setup / "A" / lc.SECRET_FILE).write_bytes(b"\x89HENN\r\n\x1a garbage")
    code, _, err = run(capsys, "migrate", "--keys", setup / "A", INSECURE)
    assert "truncated" in one_line_error(code, err, "migrate")
    code, _, err = run(capsys, "migrate", "--keys", setup / "nowhere", INSECURE)
    assert "not a key directory" in one_line_error(code, err, "migrate")
