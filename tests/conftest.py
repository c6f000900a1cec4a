"""Fixtures shared by the test modules."""

from tests.fakediscord.fixture import fake_discord  # noqa: F401 - a pytest fixture
