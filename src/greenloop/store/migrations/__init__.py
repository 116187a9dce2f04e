"""Alembic migrations of the greenloop store; `greenloop.store.schema` runs them."""
