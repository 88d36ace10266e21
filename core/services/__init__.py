"""Domain services: each owns its transaction; adapters call them."""
