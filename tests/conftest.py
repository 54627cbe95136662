"""Session-wide pytest set-up."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import settings

# Property tests check results, not speed: on a 2-core machine shared with the sim and Temporal, one
# example can take longer than hypothesis's default 200 ms deadline and fail a correct test.
settings.register_profile("rbg-flows", deadline=None)
settings.load_profile("rbg-flows")


@pytest.hookimpl(hookwrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, None]:
    # temporalio sdk-python #300: a Rust runtime thread can abort the interpreter during finalisation
    # after every test has passed. Leave at once when the session passed so that crash cannot turn a
    # green run red; a failing session exits normally with its real code.
    outcome = yield
    code = outcome.get_result()
    if code == 0:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
