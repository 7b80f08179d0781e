"""Test configuration: importing gan_envs registers the GanAtari ids for every test."""

from collections.abc import Iterator

import pytest

import gan_envs  # noqa: F401

try:  # torch is an extra (in [dev]): the dataset and wrapper tests run without it
    import torch
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session() -> Iterator[None]:
    """One torch thread for the whole run, module and session fixtures included (the CPU
    cores are shared: a second thread mostly waits for the first, and one thread keeps the
    arithmetic reproducible); restored at the end."""
    if torch is None:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Back to one thread before each test, whatever the test before it set."""
    if torch is not None:
        torch.set_num_threads(1)
