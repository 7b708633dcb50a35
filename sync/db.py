"""Database helpers for the hot path: one statement for many rows, without per-field ORM overhead."""
import io
import json
from datetime import datetime

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
    """INSERT many rows (no primary keys returned): one COPY on PostgreSQL, bulk_create elsewhere.

    COPY skips building and parsing one giant VALUES statement, on both the client and the server;
    the rows' text goes through `_copy_text`, the escaping of COPY's text format.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objects:
                field.pre_save(obj, add=True)
    data = "".join("\t".join([_copy_text(_raw(f, obj)) for f in fields]) + "\n" for obj in objects)
    columns = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN', io.StringIO(data))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value):
    """One value in COPY's text format: \\N for NULL, backslash escapes for the separators."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def insert_unless_duplicate(obj):
    """INSERT one row unless a unique constraint already holds its twin; True when it was inserted.

    One `INSERT … ON CONFLICT DO NOTHING RETURNING` (PostgreSQL, and SQLite ≥ 3.35): no savepoint and
    no IntegrityError to unwind, and the unique constraint stays the only judge of "duplicate", so two
    racing deliveries still store one row. Sets ``obj.pk`` when inserted.
    """
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    sql = (f'INSERT INTO "{meta.db_table}" (' + ", ".join(f'"{f.column}"' for f in fields) + ") VALUES ("
           + ", ".join(["%s"] * len(fields)) + f') ON CONFLICT DO NOTHING RETURNING "{meta.pk.column}"')
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    obj.pk = inserted[0]
    obj._state.adding, obj._state.db = False, connection.alias
    return True
