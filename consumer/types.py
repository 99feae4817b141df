"""Aliases shared across the folders, each defined once.

Plain names with no behaviour: every module may import this one, and it imports nothing.
"""

from __future__ import annotations

from typing import TypeAlias

#: A Kafka topic partition as the service names it: ``(topic, partition)``.
TP: TypeAlias = tuple[str, int]
#: Kafka record headers as aiokafka takes and gives them.
Headers: TypeAlias = list[tuple[str, bytes]]
#: Commit positions: per partition, the offset to commit and its metadata string.
Positions: TypeAlias = dict[TP, tuple[int, str]]
