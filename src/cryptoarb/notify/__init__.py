"""Telling people what the engine does: notifiers fed by a non-blocking hub, and the status view."""

from __future__ import annotations

from cryptoarb.notify.base import Notifier, NotifierHub
from cryptoarb.notify.console import ConsoleNotifier
from cryptoarb.notify.view import StatusView

__all__ = ["ConsoleNotifier", "Notifier", "NotifierHub", "StatusView"]
