"""The real-peer test kit: start real vLLM, Triton and Mosquitto servers on loopback.

Used by the test suite's fixtures and by `make run` (a local vLLM CPU server when the config names
no target). Each builder caches its virtualenv under the XDG cache dir, so a second run reuses it.
"""
