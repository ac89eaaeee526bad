"""Shared fixtures: the reference data in ../shared (skipped with a reason when absent), tiny nets."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('PTQ4SR_SHARED', REPO.parent / 'shared'))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: end-to-end runs on real models (minutes); select with -m slow')


@pytest.fixture(scope='session')
def shared_dir():
    """Path of the shared reference folder (models, datasets, reference); skips when it is absent."""
    if not (SHARED / 'datasets').is_dir():
        pytest.skip(f'reference data not found at {SHARED} (set PTQ4SR_SHARED to its location)')
    return SHARED
