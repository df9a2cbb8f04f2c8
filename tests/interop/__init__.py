"""Interop tests: real third-party software (dnsmasq, sipp, Kamailio, baresip) on loopback."""
