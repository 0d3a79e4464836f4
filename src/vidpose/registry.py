"""One registry kind for everything a user names: backbones, heads, losses, readers, formats.

A :class:`Registry` maps names to *specs*: small frozen dataclasses with at least ``name`` and
``help`` (one line), plus whatever metadata that kind needs (a backbone's stride and channels,
a reader's priority, a loss's parameter dataclass and default weight). Every registry behaves
the same way:

* a name registered twice is a ``ValueError`` at import time (a programming error);
* an unknown name is a :class:`~vidpose.errors.ConfigError` naming the config key or option it
  came from, the closest known name and every allowed one;
* the built-in entries live in the modules listed at construction and are imported on the
  first lookup, so a registry is complete however the package was imported;
* ``vidpose list <kind>`` prints :meth:`Registry.rows` of the registries in :data:`KINDS`.

How to add an entry: use the kind's decorator (``@register_backbone``, ``@register_head``,
``@register_supervised_loss``, ``@register_unsupervised_loss``, ``@register_reader``,
``@register_format``) in a module listed in that registry's ``modules`` (or add your module
there). The kind's module docstring shows an example.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from vidpose.errors import ConfigError


class Spec(Protocol):
    name: str
    help: str


S = TypeVar("S", bound=Spec)


def suggest(name: str, candidates: Sequence[str], n: int = 1) -> list[str]:
    """Close matches of ``name`` among ``candidates`` (difflib), best first."""
    return difflib.get_close_matches(str(name), list(candidates), n=n, cutoff=0.6)


class Registry(Generic[S]):
    """Name -> spec, with uniform errors and listing.

    Args:
        kind: what one entry is, singular ("backbone"), for messages.
        key: the config key (or option) whose values name entries ("model.backbone").
        modules: modules whose import registers the built-in entries; a failure to import
            one is an error.
        optional_modules: entry name -> module registering it; like ``modules``, but an
            import failure (a GPU library missing) is recorded in :attr:`import_errors` under
            the entry's name instead of raised.
        order: sort key of :meth:`names` (default: the name).
        columns: ``spec -> str`` of details shown by ``vidpose list`` between name and help.
        listing: its name in ``vidpose list <listing>`` (default: ``kind`` + "s").
    """

    def __init__(
        self,
        kind: str,
        *,
        key: str,
        modules: Sequence[str] = (),
        optional_modules: Mapping[str, str] | None = None,
        order: Callable[[S], Any] | None = None,
        columns: Callable[[S], str] | None = None,
        listing: str | None = None,
    ) -> None:
        self.kind = kind
        self.listing = listing or f"{kind}s"
        self.key = key
        self._modules = tuple(modules)
        self._optional = dict(optional_modules or {})
        self._order = order
        self._columns = columns
        self._specs: dict[str, S] = {}
        self._loaded = False
        # Threads may look up for the first time at once (decoder threads opening videos):
        # each waits until the built-in entries are all imported. The importing thread itself
        # may look up while a module loads, and then sees what is registered so far.
        self._load_lock = threading.RLock()
        self._loading = False
        self.import_errors: dict[str, str] = {}

    # -- filling ------------------------------------------------------------------------------

    def add(self, spec: S) -> S:
        """Register ``spec`` under ``spec.name``; ValueError if the name is taken."""
        if not spec.name or not isinstance(spec.name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {spec.name!r}")
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def _load(self) -> None:
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for module in self._modules:
                    importlib.import_module(module)
                for name, module in self._optional.items():
                    try:
                        importlib.import_module(module)
                    except Exception as exc:  # an optional (GPU) backend must not stop the rest
                        self.import_errors[name] = f"{type(exc).__name__}: {exc}"
                self._loaded = True
            finally:
                self._loading = False

    # -- lookup -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Registered names, in the registry's order."""
        self._load()
        specs = list(self._specs.values())
        specs.sort(key=self._order or (lambda s: s.name))
        return [s.name for s in specs]

    def specs(self) -> list[S]:
        """Registered specs, in the registry's order."""
        return [self._specs[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(self.specs())

    def __len__(self) -> int:
        self._load()
        return len(self._specs)

    def unknown(self, name: Any, key: str | None = None, extra: Sequence[str] = ()) -> str:
        """The message for an unknown name: the key (the registry's own when None, none when
        ""), a suggestion, the allowed names."""
        allowed = [*extra, *self.names()]
        close = suggest(str(name), allowed)
        hint = f" did you mean {close[0]!r}?" if close else ""
        why = ""
        if str(name) in self.import_errors:
            why = f" (it could not be loaded here: {self.import_errors[str(name)]})"
        where = self.key if key is None else key
        what = f"{where}: unknown {self.kind} {name!r}" if where else f"{name!r} is no {self.kind}"
        return (
            f"{what}{why};{hint} choose one of {', '.join(allowed) or '(none)'} "
            f"(`vidpose list {self.listing}`)"
        )

    def get(self, name: str, key: str | None = None) -> S:
        """The spec registered as ``name``; ConfigError (see :meth:`unknown`) otherwise."""
        self._load()
        spec = self._specs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise ConfigError(self.unknown(name, key))
        return spec

    # -- listing ------------------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, details, help) per entry, for ``vidpose list``."""
        return [(s.name, self._columns(s) if self._columns else "", s.help) for s in self]


def first_line(doc: str | None) -> str:
    """The first line of a docstring (the help of an entry registered without one)."""
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


KINDS: dict[str, str] = {
    "backbones": "vidpose.models.backbones:BACKBONES",
    "heads": "vidpose.models.heads:HEADS",
    "losses": "vidpose.losses.supervised:SUPERVISED_LOSSES",
    "unsupervised-losses": "vidpose.losses.registry:UNSUPERVISED_LOSSES",
    "readers": "vidpose.video.base:READERS",
    "formats": "vidpose.io.registry:FORMATS",
}
"""Every registry by the name ``vidpose list`` uses, as ``module:attribute`` (imported lazily)."""


def get_registry(kind: str) -> Registry:
    """The registry listed in :data:`KINDS` as ``kind``; ConfigError for an unknown kind."""
    target = KINDS.get(kind)
    if target is None:
        close = suggest(kind, list(KINDS))
        hint = f" did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown kind {kind!r};{hint} choose one of {', '.join(KINDS)}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
