"""The SCIM 2.0 service provider (spec/scim.md, docs/scim.md): Users and discovery."""
