"""Developer tools: the local runner (`make run`), the embedded database and the emulated AWS."""
