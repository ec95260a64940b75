"""How servicer modules plug into the server (`omnix_recs.api.register_services`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

import omnix_recs.api as api
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.store.sqlite import SqliteStore


def register_with(monkeypatch: pytest.MonkeyPatch, modules: tuple[str, ...]) -> api.RegisteredServices:
    monkeypatch.setattr(api, "SERVICE_MODULES", modules)

    async def register() -> api.RegisteredServices:
        server = grpc.aio.server()
        store = SqliteStore.temporary()
        try:
            return api.register_services(server, AppContext.create(Settings(), store))
        finally:
            store.close()

    return asyncio.run(register())


def test_every_listed_module_registers_and_declared_services_without_one_get_placeholders(monkeypatch):
    registered = register_with(monkeypatch, api.SERVICE_MODULES)
    assert registered.implemented == [
        "omnix.v1.CustomerService",
        "omnix.v1.CatalogService",
        "omnix.v1.RecommendationService",
        "omnix.v1.InsightsService",
        "omnix.v1.AdminService",
        "omnix.v1.MarketingService",
        "omnix.v1.InventoryService",
    ]
    assert not set(registered.implemented) & set(registered.placeholders)


def test_services_no_listed_module_registers_get_placeholders(monkeypatch):
    registered = register_with(monkeypatch, ("omnix_recs.api.customer",))
    assert registered.implemented == ["omnix.v1.CustomerService"]
    assert "omnix.v1.CatalogService" in registered.placeholders
    assert "omnix.v1.CustomerService" not in registered.placeholders


def test_a_listed_module_that_does_not_exist_fails_loudly(monkeypatch):
    with pytest.raises(ModuleNotFoundError, match="not_written_yet"):
        register_with(monkeypatch, ("omnix_recs.api.customer", "omnix_recs.api.not_written_yet"))


def test_a_module_with_a_broken_import_fails_loudly(monkeypatch, tmp_path: Path):
    (tmp_path / "omnix_test_broken_servicer.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_nobody_installed"):
        register_with(monkeypatch, ("omnix_test_broken_servicer",))
