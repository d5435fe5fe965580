"""Errors that the CLI prints as one clear line instead of a stack trace."""


class SddError(Exception):
    """A user-facing error: bad input, a missing model, an unreachable Hub, a conflicting run."""


class SddProblems(SddError):
    """Several user-facing problems found at once (a pipeline's precheck): the CLI prints one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class MissingDependencyError(SddError):
    """An optional heavy dependency is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"this needs `{package}`: install it with `pip install 'sdd-data[{extra}]'`")


def one_line(error: BaseException) -> str:
    """The whole message of an exception on one line (a parser's multi-line message joined by spaces)."""
    return " ".join(str(error).split()) or type(error).__name__


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def require(module: str, extra: str):
    """Import an optional dependency, or raise an error that says which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name and error.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(module.split(".")[0], extra) from error
