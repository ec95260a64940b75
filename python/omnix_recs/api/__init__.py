"""gRPC servicers: one module per service (validate, call a service or the engine, map back).

A module plugs in by defining `register(server, app) -> list[str]` (add its servicer, return the
full names of the services added, for health and reflection) and being listed in
`SERVICE_MODULES`; a listed module that cannot be imported stops the server at start-up rather
than leaving a service silently missing. A service declared in the protos that no module
registers gets the generated base servicer, so its RPCs answer UNIMPLEMENTED, not gRPC's bare
"Method not found!"; the interceptor (`api/interceptors.py`) wraps every method.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import grpc

import omnix_recs._proto.omnix.v1 as generated
from omnix_recs.app import AppContext

# The servicer modules, in registration order.
SERVICE_MODULES: tuple[str, ...] = (
    "omnix_recs.api.customer",
    "omnix_recs.api.catalog",
    "omnix_recs.api.recommendation",
    "omnix_recs.api.insights",
    "omnix_recs.api.admin",
    "omnix_recs.api.marketing",
    "omnix_recs.api.inventory",
)


@dataclass(frozen=True, slots=True)
class RegisteredServices:
    implemented: list[str]  # registered by a servicer module: these report SERVING
    placeholders: list[str]  # declared in the protos, every RPC answers UNIMPLEMENTED


def register_services(server: grpc.aio.Server, app: AppContext) -> RegisteredServices:
    implemented: list[str] = []
    for module_name in SERVICE_MODULES:
        implemented += importlib.import_module(module_name).register(server, app)
    placeholders = _register_placeholders(server, set(implemented))
    return RegisteredServices(implemented=implemented, placeholders=placeholders)


def _register_placeholders(server: grpc.aio.Server, registered: set[str]) -> list[str]:
    """Add the generated base servicer for every declared service no module registered."""
    added = []
    for info in sorted(pkgutil.iter_modules(generated.__path__), key=lambda m: m.name):
        if not info.name.endswith("_pb2"):
            continue
        messages = importlib.import_module(f"{generated.__name__}.{info.name}")
        for short_name, service in messages.DESCRIPTOR.services_by_name.items():
            if service.full_name in registered:
                continue
            stubs = importlib.import_module(f"{generated.__name__}.{info.name}_grpc")
            base_servicer = getattr(stubs, f"{short_name}Servicer")
            getattr(stubs, f"add_{short_name}Servicer_to_server")(base_servicer(), server)
            added.append(service.full_name)
    return added
