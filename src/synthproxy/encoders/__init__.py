"""encoders domain of synthproxy."""
