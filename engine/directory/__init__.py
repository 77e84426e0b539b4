"""The directory an identity provider syncs by SCIM (scim.py: the protocol; directory.py:
the store, the audit trail, deprovisioning and what policy reads of it)."""
