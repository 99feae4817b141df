"""Local stand-ins for the real parts: an Apache Kafka broker and an Engage simulator."""
