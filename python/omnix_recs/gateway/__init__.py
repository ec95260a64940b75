"""REST gateway, OpenAPI, docs page and web console, built from the protos' google.api.http options.

`app.create_app(GatewayConfig(target=...))` is the ASGI application; `serve` runs it beside the
gRPC server (`omnix serve --http-port`) or alone (`omnix gateway`).
"""
