"""Cloudflare's ``workers.workflows`` module: the errors a Python workflow raises and sees."""


class NonRetryableError(Exception):
    """Raised in a step: the step fails at once, without the retries of its config."""

    def __init__(self, message="", name="NonRetryableError"):
        super().__init__(message)
        self.message = message
        self.name = name


class WorkflowError(Exception):
    """An error from the engine that has no Python type (e.g. ``WorkflowTimeoutError``)."""

    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


__all__ = ["NonRetryableError", "WorkflowError"]
