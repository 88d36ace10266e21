"""Development tooling kept apart from the product: the Telegram Bot API emulator, the sandbox
chat page, and the harness that starts the whole system for tests and benchmarks."""
