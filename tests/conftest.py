"""Shared pytest options.

``--update-golden`` rewrites the pinned end-to-end results in ``tests/golden/``
instead of checking them (see ``tests/test_golden.py``).  Use it only when a
change of a figure is intended, and say why in the commit: the diff of the
golden files is the record of what moved.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.json from the current code instead of checking them",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
