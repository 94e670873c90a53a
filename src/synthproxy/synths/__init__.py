"""synths domain of synthproxy."""
