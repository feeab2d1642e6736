"""Personal-data rights: export, erasure, consents, and the audit trail admins read."""
