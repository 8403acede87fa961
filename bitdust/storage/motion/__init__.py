"""Moving pieces between this customer and its suppliers (service_data_motion)."""

from bitdust.storage.motion.errors import MotionBusy, MotionError, NoSupplier, PieceRefused, PieceTimeout
from bitdust.storage.motion.motion import DataMotion

__all__ = ["DataMotion", "MotionBusy", "MotionError", "NoSupplier", "PieceRefused", "PieceTimeout"]
