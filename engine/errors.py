"""The one error type the engine raises for anything a user can act on."""


class DataVisaError(Exception):
    """Bad input, a refused transition or a missing tool: the message says what to do."""
