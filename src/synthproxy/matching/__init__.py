"""matching domain of synthproxy."""
