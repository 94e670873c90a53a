"""presets domain of synthproxy."""
