"""State machines: the base class with table-driven transitions, and the node's
lifecycle machines (initializer, shutdowner, network_connector)."""

from bitdust.automats.automat import ANY, Automat, AutomatError, AutomatRegistry, Timer, Transition

__all__ = ["ANY", "Automat", "AutomatError", "AutomatRegistry", "Timer", "Transition"]
