"""Live updates over one WebSocket endpoint: topics, their authorization, the hub and the broker."""
