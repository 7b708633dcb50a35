"""Database helpers for the hot path: one statement for many rows, without per-field ORM overhead."""
import json

from django.db import connection, models


def _raw(field, obj):
    """A value psycopg2 adapts itself; JSON fields are encoded here (fields on this path are plain)."""
    value = getattr(obj, field.attname)
    if isinstance(field, models.JSONField):
        return json.dumps(value, separators=(",", ":"))
    return value


def bulk_update(model, objects, fields):
    """UPDATE many rows in one statement.

    On PostgreSQL: one `UPDATE … FROM (VALUES …)`, far cheaper than Django's CASE-per-field
    bulk_update. Elsewhere (SQLite in single-machine mode) one small UPDATE per row, which SQLite
    does quickly inside the surrounding transaction.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        for obj in objects:
            obj.save(update_fields=fields)
        return
    from psycopg2.extras import execute_values

    model_fields = [model._meta.get_field(name) for name in fields]
    pk = model._meta.pk
    columns = [pk.column] + [f.column for f in model_fields]
    casts = [pk.db_type(connection)] + [f.db_type(connection) for f in model_fields]
    assignments = ", ".join(f'"{col}" = v."{col}"::{cast}' for col, cast in zip(columns[1:], casts[1:]))
    sql = (f'UPDATE "{model._meta.db_table}" AS t SET {assignments} FROM (VALUES %s) AS v('
           + ", ".join(f'"{c}"' for c in columns) + f') WHERE t."{pk.column}" = v."{pk.column}"::{casts[0]}')
    rows = [[obj.pk] + [_raw(f, obj) for f in model_fields] for obj in objects]
    with connection.cursor() as cursor:
        execute_values(cursor.cursor, sql, rows, page_size=len(rows))


def bulk_insert(model, objects):
    """INSERT many rows in one statement (no primary keys returned); bulk_create elsewhere."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    from psycopg2.extras import execute_values

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objects:
                field.pre_save(obj, add=True)
    casts = ", ".join(f"%s::{f.db_type(connection)}" for f in fields)
    sql = (f'INSERT INTO "{model._meta.db_table}" (' + ", ".join(f'"{f.column}"' for f in fields)
           + ") VALUES %s")
    rows = [[_raw(f, obj) for f in fields] for obj in objects]
    with connection.cursor() as cursor:
        execute_values(cursor.cursor, sql, rows, template=f"({casts})", page_size=len(rows))
