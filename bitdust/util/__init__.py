"""Small helpers shared by every part: atomic files, sizes, time."""
