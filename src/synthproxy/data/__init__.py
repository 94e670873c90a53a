"""data domain of synthproxy."""
