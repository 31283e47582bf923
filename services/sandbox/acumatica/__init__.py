"""A stand-in for Acumatica ERP's contract-based REST API, with seeded data and fault injection."""
