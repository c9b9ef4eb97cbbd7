"""Errors the engine raises for bad input.

Every message names the offending file (when there is one) and says what to change,
so that the Scipion log or the terminal tells a user how to fix the run.
"""


class DeepictError(Exception):
    """Base class for errors a user can fix by changing the input or the parameters."""


class InputFileError(DeepictError):
    """A file is missing, corrupt, truncated, of the wrong kind or holds invalid values."""

    def __init__(self, path, problem, fix):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. {fix}")


class ParameterError(DeepictError):
    """A parameter value is out of range or inconsistent with the inputs."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM from a job scheduler): unwinds like Ctrl-C so cleanup code runs."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)
