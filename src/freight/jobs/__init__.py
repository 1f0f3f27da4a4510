"""The job platform: specs, states, queues, placement, the scheduler and the service facade."""
