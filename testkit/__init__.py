"""Test doubles, not installed with the product: the Bot API emulator, the BikeWerk simulator and the
non-system clocks. The demo, the tests and the benchmarks import them."""
