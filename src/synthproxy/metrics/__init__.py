"""metrics domain of synthproxy."""
