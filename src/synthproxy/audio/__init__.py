"""audio domain of synthproxy."""
