"""The state folder holds the database DSN, the ingest API key and the logs: only its owner
may read it (folder 0700, endpoints and key files 0600), even when an older version left
them open."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from promoter.supervisor import API_KEY_FILE, Stack, make_private_dir, write_private
from shared.settings import Settings

pytestmark = pytest.mark.logic


# As root the embedded PostgreSQL server's own user must traverse the folder (no listing).
PRIVATE_DIR = 0o711 if os.geteuid() == 0 else 0o700


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_folder_is_closed_to_others_even_if_it_existed_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)

    make_private_dir(state)

    assert mode(state) == PRIVATE_DIR


def test_a_private_file_is_0600_even_when_it_existed_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text("old")
    path.chmod(0o644)

    write_private(path, '{"database_url": "postgresql://u:pw@h/db"}')

    assert mode(path) == 0o600
    assert path.read_text() == '{"database_url": "postgresql://u:pw@h/db"}'


def test_the_generated_ingest_key_is_owner_only_and_stable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    stack = Stack(Settings(state_dir=state, ingest_api_key=None))

    key = stack.api_key()

    assert mode(state) == PRIVATE_DIR
    assert mode(state / API_KEY_FILE) == 0o600
    assert stack.api_key() == key


def test_a_key_file_left_readable_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / API_KEY_FILE).write_text("old-key\n")
    (state / API_KEY_FILE).chmod(0o644)

    assert Stack(Settings(state_dir=state, ingest_api_key=None)).api_key() == "old-key"
    assert mode(state / API_KEY_FILE) == 0o600
