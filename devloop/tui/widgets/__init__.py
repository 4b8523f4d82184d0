"""Reusable widgets: the navigation bar, stat cards, budget gauges, tier health, call detail."""
