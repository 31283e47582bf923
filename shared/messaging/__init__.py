"""Messaging runtime on aio-pika: topology, envelope, confirmed publisher, batch consumer."""
