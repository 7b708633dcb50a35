"""One exception tree for the sync app (STYLE rule 7). Messages never carry secrets or payloads."""


class SyncError(Exception):
    """Root of every error raised by the sync app."""

    retryable = False


class ConfigurationError(SyncError):
    """The connector lacks what is needed to sync (credentials, settings); fix it in admin, then retry."""


class APIError(SyncError):
    """An HTTP API answered with an error or could not be reached."""

    def __init__(self, message, status=None, body=""):
        super().__init__(message)
        self.status = status
        self.body = (body or "")[:500]

    def __str__(self):
        detail = f" (HTTP {self.status})" if self.status else ""
        return f"{self.args[0]}{detail}"


class RetryableAPIError(APIError):
    """429, 5xx, timeouts and connection errors: try again later."""

    retryable = True


class PermanentAPIError(APIError):
    """Other 4xx: retrying the same request will not help."""


class CredentialsRejected(PermanentAPIError):
    """401 from Customer.io or Hull: stop until the key is fixed."""
