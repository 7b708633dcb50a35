"""Store the Hull notification bodies with lz4 instead of PostgreSQL's default pglz.

A 100-message notification is ~130 KB of JSON: pglz spent ~0.9 ms of server CPU compressing each,
lz4 ~0.2 ms for the same size on disk. PostgreSQL ≥ 14 built with lz4 only (Debian's and the official
images are); elsewhere, and on SQLite, this changes nothing.
"""
from django.db import DatabaseError, migrations, transaction

TABLE, COLUMN = "webhooks_hullnotification", "body"


def lz4_compression(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN "{COLUMN}" SET COMPRESSION lz4')
    except DatabaseError:
        pass  # the server was built without lz4: keep its default compression


def default_compression(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql" and connection.pg_version >= 140000:
        schema_editor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN "{COLUMN}" SET COMPRESSION default')


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_lean_indexes")]

    operations = [migrations.RunPython(lz4_compression, default_compression)]
