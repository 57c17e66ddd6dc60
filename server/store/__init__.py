"""All SQL, one module per area."""
