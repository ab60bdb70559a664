"""The errors a user can act on. The command line prints one line for each and exits with its code.

| exit code | class | meaning |
|---|---|---|
| 0 | - | ok |
| 1 | InputError | problems found in the input (documents, exports, annotations, a conflict) |
| 2 | UsageError, ConfigError | bad arguments or a bad config file (wrong type, unknown key) |
| 3 | SetupError | the environment: a missing server, model or package, a port taken |

The classes also derive from the built-in exception that was raised at the same place before
(ValueError, RuntimeError), so callers catching those still do.
"""

from __future__ import annotations

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_SETUP = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 problems found in the input, 2 usage (bad arguments or config), "
    "3 environment (missing server, model or package)"
)


class PlanieError(Exception):
    """Base of planie's user-facing errors; ``exit_code`` is what the command line returns."""

    exit_code = EXIT_INPUT


class InputError(PlanieError, ValueError):
    """Problems in the input: a document, an export, gold annotations."""

    exit_code = EXIT_INPUT


class UsageError(PlanieError, ValueError):
    """Bad arguments: an option value that cannot work."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config file that does not validate; the message names the file and the key."""


class SetupError(PlanieError, RuntimeError):
    """The environment is missing something: a server, a model, a package; or a port is taken."""

    exit_code = EXIT_SETUP


class MissingModelError(SetupError, ValueError):
    """A model folder that does not exist or is not a planie model (a ValueError before)."""
