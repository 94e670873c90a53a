"""analysis domain of synthproxy."""
