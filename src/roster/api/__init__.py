"""The HTTP doors: thin adapters that parse, call one core function and render."""
