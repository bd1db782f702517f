"""A torchrun worker leaves through ``os._exit`` with the command's exit code."""

from __future__ import annotations

import pytest

import faceedit.cli as cli


class _Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch):
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    return codes


def test_a_torchrun_worker_skips_interpreter_teardown(monkeypatch, exits) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(_Exited):
        cli.main(["models"])
    with pytest.raises(_Exited):
        cli.main(["data", "avatars", "--n", "0", "-o", "unused"])
    assert exits == [0, 2]


@pytest.mark.parametrize("env", [{}, {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "1"}])
def test_other_processes_return_normally(monkeypatch, exits, env) -> None:
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["models"]) == 0
    assert exits == []
