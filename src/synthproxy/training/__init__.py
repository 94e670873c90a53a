"""training domain of synthproxy."""
