"""The scheduler: turns active automation schedules into batch jobs; one leader at a time."""
