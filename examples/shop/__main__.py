"""``python -m examples.shop --bootstrap HOST:PORT [--order-port N --inventory-port N --payment-port N]``."""

from __future__ import annotations

import sys

from examples.shop.runner import main

sys.exit(main())
