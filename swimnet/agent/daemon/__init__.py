"""The daemon's wiring: settings (TOML + flags), the state directory (identity, local
endpoints), the run loop (start, signals, graceful leave, exit codes) and the Prometheus
metrics endpoint. It builds the node, the domain and the HTTP server and connects them.

Nothing is imported here (`settings` is read by the CLI, which must stay light).
"""
