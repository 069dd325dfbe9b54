"""Configuration, read once at import time (twelve-factor: the URL comes from the environment)."""

import os

DATABASE_URL = os.environ["DATABASE_URL"]
LOW_STOCK_THRESHOLD = int(os.environ.get("LOW_STOCK_THRESHOLD", "5"))
