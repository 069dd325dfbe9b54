"""The example application whose models the toolkit migrates."""
