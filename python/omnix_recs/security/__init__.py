"""Security: who may call what (`roles`), bearer tokens (`auth`), TLS (`tls`), per-client
shares (`fairness`), the audit log (`audit`), the start-up check that refuses to expose an
unprotected server (`exposure`), and their assembly from settings (`setup`)."""
