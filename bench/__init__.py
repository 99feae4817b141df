"""The benchmark harness: our consumer against its bounds and its peers, in one run.

``python -m bench`` (``./dev bench``) starts the local Kafka broker and the Engage simulator,
runs the workloads through our consumer, a naive hand-written baseline, Confluent's Parallel
Consumer and FastStream, computes the bounds of this machine in the same run, and writes a
Markdown + JSON report with plots under ``bench/results/<timestamp>/``. See bench/README.md.
"""
