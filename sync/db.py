"""Database helpers for the hot path."""
from django.db import connection


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
    rows = [[pk.get_db_prep_value(obj.pk, connection)]
            + [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in model_fields] for obj in objects]
    with connection.cursor() as cursor:
        execute_values(cursor.cursor, sql, rows, page_size=len(rows))
