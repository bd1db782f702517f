"""Who may load what through the page: the model box's policy and its error texts.

On loopback (``127.0.0.1``, ``localhost``, ``::1``) the page is the user's own tool and
the model box takes a path as ``faceedit edit --model`` does. Bound to any other address
the page is open to the network, so it takes only the names of the shipped models and of
the official models already in the cache, unless the server was started with
``--allow-paths``. Either way a model that fails to load gives a line that names only what
the user typed: never a server path, whether a path exists, or what a file holds (the
details go to the server's log).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from faceedit.errors import FaceeditError

log = logging.getLogger("faceedit.app")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ModelRefused(FaceeditError):
    """A model the page will not load (not offered by this server, or unusable)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    return host.strip().strip("[]").lower() in LOOPBACK


def offered_names() -> dict[str, Path]:
    """``{name: path}`` of the shipped models and the official models in the cache."""
    from faceedit.hub import catalogue

    out = {}
    for entry in catalogue().values():
        if entry.path is not None and entry.path.exists():
            out[entry.name] = entry.path
    return out


@dataclass(frozen=True)
class AccessPolicy:
    """What the model box accepts.

    Attributes:
        allow_paths: paths on the server's disk are loaded (loopback, or ``--allow-paths``);
            otherwise only :func:`offered_names`.
        remote: the server listens off loopback (messages and the start-up line say so).
    """

    allow_paths: bool = True
    remote: bool = False

    @classmethod
    def for_host(cls, host: str, allow_paths: bool = False) -> AccessPolicy:
        remote = not is_loopback(host)
        return cls(allow_paths=allow_paths or not remote, remote=remote)

    def describe(self) -> str:
        """One line for the server's start-up message."""
        if not self.remote:
            return "local only: the model box takes model names and paths on this machine"
        if self.allow_paths:
            return (
                "open to the network with --allow-paths: the model box loads any path "
                "on this machine"
            )
        return (
            "open to the network: the model box takes only the shipped and downloaded "
            "model names (--allow-paths to load paths)"
        )

    def resolve(self, typed: str) -> str:
        """The model to load for what the user typed: a catalogue name's own directory
        (a name never resolves to a same-named file in the server's working directory),
        else the text itself where paths are allowed.

        Raises:
            ModelRefused: a path (or unknown name) while paths are not allowed.
        """
        text = typed.strip()
        offered = offered_names()
        if text in offered:
            return str(offered[text])
        if self.allow_paths:
            return text
        names = ", ".join(sorted(offered)) or "none"
        raise ModelRefused(f"model {_shown(text)}: not offered by this server (choose: {names})")


def _shown(typed: str) -> str:
    """What the user typed, quoted and cut short for a one-line message."""
    text = " ".join(typed.split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def model_error(typed: str, method: str, error: Exception) -> ModelRefused:
    """The page's line for a model that did not load: it names what the user typed and
    the method, never the server's paths or a file's content (those are logged)."""
    from faceedit.hub import catalogue

    if isinstance(error, ModelRefused):
        return error
    log.info("model %r (method %s) did not load: %s", typed, method, error)
    entry = catalogue().get(typed.strip())
    if entry is not None and entry.path is None:
        return ModelRefused(
            f"model {_shown(typed)} is not downloaded yet: faceedit download {entry.name}"
        )
    if entry is None and _missing(typed):
        return ModelRefused(f"model {_shown(typed)}: no such model (faceedit models lists them)")
    return ModelRefused(f"model {_shown(typed)} cannot be used with method {method}")


def _missing(typed: str) -> bool:
    try:
        return not Path(typed.strip()).expanduser().exists()
    except OSError:
        return True


# a path the server knows (an upload's temporary folder, a model's directory): its
# folders go, the file's own name (what the user uploaded) stays
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:[\\/][^\s\\/:'\"`]+)+[\\/]")


def scrub_paths(text: str) -> str:
    """``text`` with the folders of every absolute path taken out (``/tmp/x/a.png`` ->
    ``a.png``), for messages shown on the page."""
    return _PATH.sub("", text)
