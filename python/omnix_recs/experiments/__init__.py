"""A/B experiments: sticky assignment, attribution of purchases to served lists, and the
statistics that judge arms (always-valid sequential p-values, sample-ratio check, CUPED)."""
