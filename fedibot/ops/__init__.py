"""Operations: the health/metrics HTTP server, Prometheus metrics, structured logs."""
