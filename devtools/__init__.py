"""Developer tooling: setup helpers, the emulator suite wrapper, seeding."""
