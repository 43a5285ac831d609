"""An optional ipywidgets form over a notebook's papermill parameters; headless it is a no-op.

The parameters cell stays the single source of truth (papermill overrides it). :func:`parameter_form` shows a form
pre-filled from those values when a live Jupyter front end can display widgets; :meth:`ParamForm.values` returns
the same ``dict`` the parameters cell defined, with any edits applied. Headless (papermill, nbval, a plain Python
process) or without ipywidgets, nothing is displayed and ``values()`` returns the parameters unchanged, so the
notebooks never depend on widgets.

Example:
    >>> form = parameter_form({"TARGET": "local", "REQUESTS": 20}, interactive=False)
    >>> form.values()
    {'TARGET': 'local', 'REQUESTS': 20}
    >>> form.shown
    False
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from workshop_lib.config import FRAMEWORKS, INSTANCE_TYPES, KV_BACKENDS, TARGETS
from workshop_lib.errors import ConfigError

# Parameters shown as drop-downs, with their choices (the lists live in workshop_lib.config, which validates them).
CHOICES: dict[str, tuple[str, ...]] = {
    "TARGET": TARGETS,
    "FRAMEWORK": FRAMEWORKS,
    "KV_BACKEND": KV_BACKENDS,
    "INSTANCE_TYPE": tuple(INSTANCE_TYPES),
}
HIDDEN = ("HF_TOKEN",)  # never shown in a form (the token comes from the environment or getpass)


def headless() -> bool:
    """True when no front end can show widgets: papermill/nbval/runner runs, or not inside an IPython kernel.

    ``WORKSHOP_HEADLESS=1`` forces headless; ``WORKSHOP_RECORD_DIR`` (set by ``workshop run``) implies it.
    """
    if os.environ.get("WORKSHOP_HEADLESS") == "1" or os.environ.get("WORKSHOP_RECORD_DIR"):
        return True
    if os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("NBVAL"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    ip = get_ipython()
    return ip is None or type(ip).__name__ != "ZMQInteractiveShell"


def _coerce(name: str, text: Any, like: Any) -> Any:
    """Turn a widget's value back into the type of the parameter's default."""
    if isinstance(like, bool):
        return bool(text)
    if isinstance(like, int):
        try:
            return int(text)
        except (TypeError, ValueError):
            raise ConfigError(name, f"{text!r} is not an integer", f"enter a whole number for {name}") from None
    if isinstance(like, float):
        try:
            return float(text)
        except (TypeError, ValueError):
            raise ConfigError(name, f"{text!r} is not a number", f"enter a number for {name}") from None
    if isinstance(like, (list, tuple)):
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        kind = type(like[0]) if like else str
        return [_coerce(name, p, kind()) for p in parts]
    if like is None:
        return None if str(text).strip().lower() in ("", "none") else str(text)
    return str(text)


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


class ParamForm:
    """A form over ``params``; ``values()`` gives the edited dict (the original when nothing was shown).

    Args:
        params: the parameters cell's values (``NAME: default``).
        interactive: show widgets (default: when not :func:`headless`).
        choices: extra drop-down choices per name.
    """

    def __init__(
        self, params: Mapping[str, Any], *, interactive: bool | None = None,
        choices: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.params = {k: v for k, v in params.items() if k not in HIDDEN}
        self.choices = {**CHOICES, **(choices or {})}
        self._controls: dict[str, Any] = {}
        self.widget: Any = None
        want = (not headless()) if interactive is None else interactive
        self.shown = bool(want) and self._build()

    def _build(self) -> bool:
        try:
            import ipywidgets as w
        except ImportError:
            return False
        style = {"description_width": "170px"}
        layout = w.Layout(width="460px")
        for name, value in self.params.items():
            opts = self.choices.get(name)
            if opts and (value in opts or value is None):
                ctl = w.Dropdown(options=list(opts), value=value or opts[0], description=name, style=style, layout=layout)
            elif isinstance(value, bool):
                ctl = w.Checkbox(value=value, description=name, style=style)
            elif isinstance(value, int):
                ctl = w.IntText(value=value, description=name, style=style, layout=layout)
            elif isinstance(value, float):
                ctl = w.FloatText(value=value, description=name, style=style, layout=layout)
            else:
                ctl = w.Text(value=_as_text(value), description=name, style=style, layout=layout)
            self._controls[name] = ctl
        note = w.HTML("<i>Edit, then run the next cell. The parameters cell keeps the defaults (papermill sets it).</i>")
        self.widget = w.VBox([note, *self._controls.values()])
        return True

    def values(self) -> dict[str, Any]:
        """The parameters with the form's edits, typed like their defaults.

        Raises:
            ConfigError: a field holds text that is not of its parameter's type.
        """
        if not self.shown:
            return dict(self.params)
        return {name: _coerce(name, ctl.value, self.params[name]) for name, ctl in self._controls.items()}

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        if self.shown:
            from IPython.display import display

            display(self.widget)


def parameter_form(params: Mapping[str, Any], *, interactive: bool | None = None) -> ParamForm:
    """A :class:`ParamForm` over ``params`` (shown by putting it last in a cell).

    Typical notebook use::

        form = parameter_form(PARAMS)   # a form in JupyterLab, nothing headless
        form
        # next cell
        PARAMS = form.values()
    """
    return ParamForm(params, interactive=interactive)


def progress(iterable: Any = None, **kwargs: Any) -> Any:
    """tqdm that draws a widget bar in Jupyter and a text bar elsewhere (``tqdm.auto``)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kwargs)
