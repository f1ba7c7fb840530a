"""Every test's fixtures come from one family: tests/fixtures/pytest_plugin.py."""

pytest_plugins = ["tests.fixtures.pytest_plugin"]
