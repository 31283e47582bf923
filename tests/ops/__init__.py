"""Operations: dead-letter CLI, services set-up, sweep of leftover test topologies."""
