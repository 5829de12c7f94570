"""A demo shop for saga tests: order, inventory and payment services choreographed over Kafka.

See README.md beside this file for the endpoints, events and admin switches.
"""

from examples.shop.events import DEFAULT_TOPIC_PREFIX, ShopTopics
from examples.shop.runner import READY_PREFIX, RunningShop, running_shop

__all__ = ["DEFAULT_TOPIC_PREFIX", "READY_PREFIX", "RunningShop", "ShopTopics", "running_shop"]
