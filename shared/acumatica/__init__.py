"""Acumatica ERP: async client, typed models, value-wrapped JSON helpers, `$filter` builder."""
