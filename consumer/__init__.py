"""engage-consumer: Kafka order-lifecycle events to Voyado Engage, actions gated on versionTag."""

__version__ = "0.1.0"
