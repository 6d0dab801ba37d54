"""The test suite: real SQLite files, real HTTP to the simulator and the Bot API emulator."""
