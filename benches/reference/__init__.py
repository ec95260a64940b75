"""Reference implementations the Rust core (and the vectorised baselines) are checked and timed
against (tests and benches only; not part of the package). Imported as `reference.rank`,
`reference.history` and `reference.baselines`, with `benches/` on the path: pytest adds it
(pyproject.toml), a bench run from there has it."""
