"""Cluster tests: Redis-backed location stores, trio-sip proxy nodes behind Kamailio."""
