"""Activity implementations (I/O through injected clients) and their interface for the workflows."""
