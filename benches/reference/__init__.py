"""Reference implementations the Rust core is checked and timed against (tests and benches
only; not part of the package). Imported as `reference.rank` and `reference.history`, with
`benches/` on the path: pytest adds it (pyproject.toml), a bench run from there has it."""
