"""gRPC servicers: one module per service (validate, call the domain, map to protobuf)."""
