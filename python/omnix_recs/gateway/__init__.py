"""REST gateway and dashboard (later issue)."""
