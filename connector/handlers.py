"""The WSGI application: Hull's and Customer.io's endpoints get a Django handler of their own.

Both handlers are Django's WSGIHandler; the machine one is built with ``settings.MACHINE_MIDDLEWARE``
instead of ``settings.MIDDLEWARE`` (see settings for why). Request signals, database connection
handling and exception handling are Django's own in both.
"""
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


class MachineEndpointsHandler(WSGIHandler):
    """Django's WSGI handler with ``settings.MACHINE_MIDDLEWARE`` as its middleware chain."""

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE; point it at the short list while it
        # does. This runs once, when the process loads the application, before any request.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MACHINE_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class ConnectorApplication:
    """Routes each request by path: machine endpoints to the short chain, the rest (admin, health,
    schema) to the full one."""

    def __init__(self):
        self.site = WSGIHandler()
        self.machine = MachineEndpointsHandler()
        self.machine_prefixes = tuple(settings.MACHINE_PATH_PREFIXES)

    def __call__(self, environ, start_response):
        machine = environ.get("PATH_INFO", "").startswith(self.machine_prefixes)
        return (self.machine if machine else self.site)(environ, start_response)
