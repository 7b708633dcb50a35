"""`make soak`: a bounded soak of mixed traffic against gunicorn + Celery workers + the fakes (see __main__)."""
