"""Database helpers for the hot path: one statement for many rows, without per-field ORM overhead."""
import io
from datetime import datetime

from django.db import connection, models
from django.utils import timezone

from .encoding import compact_json


def _raw(field, obj):
    """A value psycopg2 adapts itself; JSON fields are encoded here (fields on this path are plain)."""
    value = getattr(obj, field.attname)
    if isinstance(field, models.JSONField):
        return compact_json(value).decode()
    return value


def bulk_update(model, objects, fields):
    """UPDATE many rows in one statement.

    On PostgreSQL: one `UPDATE … FROM unnest(<one array per column>)`, far cheaper than Django's
    CASE-per-field bulk_update, and psycopg2 builds the arrays in C rather than a VALUES row at a time.
    Elsewhere (SQLite in single-machine mode) one small UPDATE per row, which SQLite does quickly
    inside the surrounding transaction.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        for obj in objects:
            obj.save(update_fields=fields)
        return
    pk = model._meta.pk
    model_fields = [model._meta.get_field(name) for name in fields]
    columns = ", ".join(f'"{f.column}"' for f in [pk] + model_fields)
    arrays = ", ".join(f"%s::{_array_type(f)}" for f in [pk] + model_fields)
    assignments = ", ".join(f'"{f.column}" = v."{f.column}"' for f in model_fields)
    sql = (f'UPDATE "{model._meta.db_table}" AS t SET {assignments} FROM unnest({arrays}) AS v({columns}) '
           f'WHERE t."{pk.column}" = v."{pk.column}"')
    values = [[obj.pk for obj in objects]] + [[_raw(f, obj) for obj in objects] for f in model_fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def _array_type(field):
    """The SQL array type a column's values are sent as (JSON goes as text, cast per element)."""
    if isinstance(field, models.JSONField):
        return "text[]::jsonb[]"
    return f"{field.db_type(connection)}[]"


def bulk_insert(model, objects):
    """INSERT model instances in one statement (no primary keys returned); see bulk_insert_rows."""
    fields = _insert_fields(model)
    bulk_insert_rows(model, [{f.attname: getattr(obj, f.attname) for f in fields} for obj in objects])


def bulk_insert_rows(model, rows):
    """INSERT rows given as ``{field attname: value}``: one COPY on PostgreSQL, bulk_create elsewhere.

    Fields a row leaves out take their default, and auto_now(_add) fields left empty take the time
    of the call, as a model instance would. Plain dicts skip building a model instance per row, and
    COPY skips building and parsing one giant VALUES statement, on both the client and the server.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**row) for row in rows])
        return
    fields = _insert_fields(model)
    now = timezone.now()
    columns = []
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            columns.append((field.attname, None, lambda value: _copy_text(now if value is None else value)))
        elif isinstance(field, models.JSONField):
            columns.append((field.attname, field.get_default(), _copy_json))
        else:
            columns.append((field.attname, field.get_default(), _copy_text))
    data = "".join(["\t".join([encode(row.get(name, default)) for name, default, encode in columns]) + "\n"
                    for row in rows])
    names = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f'COPY "{model._meta.db_table}" ({names}) FROM STDIN', io.StringIO(data))


def _insert_fields(model):
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _copy_text(value):
    """One value in COPY's text format: \\N for NULL, backslash escapes for the separators."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _copy_json(value):
    return _copy_text(compact_json(value).decode())


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
