"""pipeline domain of synthproxy."""
