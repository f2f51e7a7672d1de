"""The test suite on a fresh machine: programs the README's set-up does not install (sshd, npm)
skip their tests with one line naming the package, unless ADAPTERGIT_NO_SKIP=1 (CI) is set."""

from __future__ import annotations

import pytest

from .servers import NO_SKIP_ENV, needs


def test_a_missing_program_skips_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(NO_SKIP_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        needs("no-such-program-here", "the-package")
    assert str(info.value) == "needs no-such-program-here: install the-package"
    needs("git", "git")  # there: nothing happens


def test_ci_turns_the_skip_into_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_SKIP_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="needs sshd: install openssh-server"):
        needs("sshd", "openssh-server", found=False)
