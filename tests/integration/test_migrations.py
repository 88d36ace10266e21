"""The Alembic migrations build exactly the schema the models describe, on every backend."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import community.models  # noqa: F401 - its tables are part of the schema
import community.points.models  # noqa: F401 - its tables are part of the schema
import training.models  # noqa: F401 - its tables are part of the schema
from core.db import Database
from core.models import Base


async def test_migrations_create_every_model_table(db: Database) -> None:
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_migrated_schema_equals_the_models(db: Database) -> None:
    """Alembic's autogenerate finds nothing to do: columns, types, indexes, constraints match."""

    def diff(connection) -> list:  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], "a model changed without a migration (alembic revision " \
        "--autogenerate) or a migration drifted from the models:\n" + "\n".join(
            map(str, differences))
