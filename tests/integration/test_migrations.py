"""The Alembic migrations build the schema the models describe, on every backend."""

from sqlalchemy import inspect

from core.db import Database
from core.models import Base


async def test_migrations_create_every_model_table(db: Database) -> None:
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
