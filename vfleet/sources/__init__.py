"""Where the fleet's data can come from besides polling the hosts (a Prometheus-API server)."""
