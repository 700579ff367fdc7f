"""Token encryption at rest: where the key comes from, how it is kept, and what a wrong key says."""

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from kandji_bridge.config import Settings, load_settings
from kandji_bridge.errors import ConfigError
from kandji_bridge.token_vault import decrypt_token, encrypt_token, mask_token

TOKEN = "5f1c7a2e-9d4b-4e8a-b3c6-0a1b2c3d4e5f"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_file_is_created_owner_only_on_first_use(settings: Settings) -> None:
    ciphertext = encrypt_token(settings, TOKEN)
    assert TOKEN not in ciphertext
    assert decrypt_token(settings, ciphertext) == TOKEN
    assert mode(settings.secret_key_file) == 0o600
    assert mode(settings.home) == 0o700
    Fernet(settings.secret_key_file.read_bytes().strip())  # a valid key
    assert [path.name for path in settings.home.iterdir()] == ["secret.key"]  # no temp file left


def test_the_key_file_is_owner_only_whatever_the_umask(settings: Settings) -> None:
    previous = os.umask(0)
    try:
        encrypt_token(settings, TOKEN)
    finally:
        os.umask(previous)
    assert mode(settings.secret_key_file) == 0o600


def test_the_key_file_is_reused(settings: Settings) -> None:
    ciphertext = encrypt_token(settings, TOKEN)
    key = settings.secret_key_file.read_bytes()
    assert decrypt_token(load_settings(), ciphertext) == TOKEN
    assert settings.secret_key_file.read_bytes() == key


def test_processes_racing_to_create_the_key_agree_on_one(settings: Settings) -> None:
    ciphertexts: list[str] = []
    start = threading.Barrier(8)

    def encrypt() -> None:
        start.wait()
        ciphertexts.append(encrypt_token(settings, TOKEN))

    threads = [threading.Thread(target=encrypt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [decrypt_token(settings, ciphertext) for ciphertext in ciphertexts] == [TOKEN] * 8


def test_a_fernet_key_in_the_environment_is_used_as_is(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("KANDJI_BRIDGE_SECRET_KEY", key.decode())
    ciphertext = encrypt_token(load_settings(), TOKEN)
    assert Fernet(key).decrypt(ciphertext.encode()).decode() == TOKEN
    assert not home.exists()  # no key file, not even a home


def test_a_passphrase_in_the_environment_derives_the_same_key_every_time(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANDJI_BRIDGE_SECRET_KEY", PASSPHRASE)
    ciphertext = encrypt_token(load_settings(), TOKEN)
    assert decrypt_token(load_settings(), ciphertext) == TOKEN
    assert not home.exists()


def test_a_short_passphrase_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError) as caught:
        encrypt_token(replace(settings, secret_key="hunter2"), TOKEN)
    message = str(caught.value)
    assert message.startswith("KANDJI_BRIDGE_SECRET_KEY is too short (7 characters);")
    assert "Fernet.generate_key()" in message
    assert "hunter2" not in message


def test_a_wrong_key_file_is_explained(settings: Settings) -> None:
    ciphertext = encrypt_token(settings, TOKEN)
    settings.secret_key_file.write_bytes(Fernet.generate_key())
    with pytest.raises(ConfigError) as caught:
        decrypt_token(settings, ciphertext)
    assert str(caught.value) == (
        "A stored token was encrypted with a different secret key than the key file "
        f"{settings.secret_key_file}; restore the key file or KANDJI_BRIDGE_SECRET_KEY used when "
        "it was saved, or remove the source and add it again."
    )


def test_a_wrong_passphrase_is_explained(settings: Settings) -> None:
    ciphertext = encrypt_token(replace(settings, secret_key=PASSPHRASE), TOKEN)
    with pytest.raises(ConfigError, match="than the one in KANDJI_BRIDGE_SECRET_KEY;"):
        decrypt_token(replace(settings, secret_key=PASSPHRASE + "!"), ciphertext)
    with pytest.raises(ConfigError, match="than the key file"):
        decrypt_token(settings, ciphertext)


def test_a_damaged_ciphertext_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="different secret key"):
        decrypt_token(settings, "not a fernet token")


def test_a_key_file_others_can_read_is_refused(settings: Settings) -> None:
    encrypt_token(settings, TOKEN)
    settings.secret_key_file.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        encrypt_token(settings, TOKEN)
    assert str(caught.value) == (
        f"The key file {settings.secret_key_file} can be read by other users; "
        f"run `chmod 600 {settings.secret_key_file}`."
    )


def test_a_damaged_key_file_is_refused(settings: Settings) -> None:
    settings.home.mkdir(mode=0o700)
    settings.secret_key_file.write_text("not a key\n")
    settings.secret_key_file.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold a valid key; restore it from a backup"):
        encrypt_token(settings, TOKEN)


def test_a_key_file_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = load_settings(home=tmp_path / "file" / "home", env={})
    with pytest.raises(ConfigError, match="pass --home with a folder you can write to"):
        encrypt_token(settings, TOKEN)


@pytest.mark.parametrize("token", [TOKEN, "abcd", "x"])
def test_mask_token_shows_nothing_of_the_token(token: str) -> None:
    masked = mask_token(token)
    assert masked == "********"
    assert not set(token) & set(masked)


def test_mask_token_says_when_there_is_none() -> None:
    assert mask_token("") == "(not set)"
    assert mask_token(None) == "(not set)"
