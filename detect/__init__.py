"""Detection (weighted scores -> intervals), evaluation (ActivityNet protocol) and plots."""
