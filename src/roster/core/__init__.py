"""The directory itself: plain Python over SQLAlchemy Core, no web framework."""
