"""Pure domain logic: entities, validation and analysis. No I/O, no gRPC."""
