"""gRPC servicers: one module per service (validate, call the store or domain, map to protobuf).

How a service plugs into the server
-----------------------------------
1. Write `omnix_recs/api/<service>.py` with a servicer subclassing the generated
   `<Name>Servicer` and a module-level function

       def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
           recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
               RecommendationServicer(app), server)
           return [recommendation_pb2.DESCRIPTOR.services_by_name["RecommendationService"].full_name]

   returning the full names of the services it added (for health and reflection).
2. Make sure the module is listed in `SERVICE_MODULES` below (the planned ones already are;
   a listed module that does not exist yet is skipped).

Nothing else: the interceptor (`api/interceptors.py`) wraps every method, so servicers just
raise `omnix_recs.errors` exceptions. An RPC a servicer does not override answers
UNIMPLEMENTED "<Rpc> is not implemented yet in this server version" (the generated base
raises NotImplementedError; raising it yourself does the same). Every service declared in the
protos but not registered by a module gets a placeholder servicer, so all of its RPCs answer
that way too instead of gRPC's bare "Method not found!".
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import grpc

from omnix_recs.app import AppContext
import omnix_recs._proto.omnix.v1 as generated

# The servicer modules, in registration order.
SERVICE_MODULES: tuple[str, ...] = (
    "omnix_recs.api.customer",
    "omnix_recs.api.catalog",
    "omnix_recs.api.recommendation",
    "omnix_recs.api.insights",
    "omnix_recs.api.admin",
    "omnix_recs.api.marketing",
)


@dataclass(frozen=True, slots=True)
class RegisteredServices:
    implemented: list[str]  # registered by a servicer module: these report SERVING
    placeholders: list[str]  # declared in the protos, every RPC answers UNIMPLEMENTED


def register_services(server: grpc.aio.Server, app: AppContext) -> RegisteredServices:
    implemented: list[str] = []
    for module_name in SERVICE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the module exists but one of its imports is missing
                raise
            continue
        implemented += module.register(server, app)
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
