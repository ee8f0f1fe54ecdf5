"""ewsim: a standalone Exchange Web Services (EWS) SOAP simulator for development, demos and tests."""

from __future__ import annotations

__version__ = "0.1.0"
