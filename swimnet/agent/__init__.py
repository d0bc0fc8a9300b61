"""swimnet-agent: the per-host daemon (config, state directory, control API, CLI, metrics).

Modules, one concern each:
  settings        TOML file + flags -> AgentSettings (ConfigError names file, key, reason)
  state_store     the state directory: identity (name, incarnation), local endpoints
  daemon          the daemon's life: start, signals, graceful leave, exit codes
  probe_rtt       the histogram of direct probe round-trip times (the node's ping observer)
  overlay_state   LocalEndpointSpec, OverlaySnapshot, the datapath driver interface
  overlay_agent   local endpoints, held scopes, refresh, datapath feed
  network_ops / endpoint_ops / service_ops    the control operations
  tables_view     typed read-only view of the replicated tables
  adoption        re-publishing network and service definitions whose writer went away
  conflicts       duplicate IP/MAC detection and deterministic datapath resolution
  keys_admin      cluster-wide key operations, SIGHUP reload, key file write-back
  http_server     h11 HTTP/1.1 server under trio (bounded, with timeouts)
  routes          the control API's URL scheme (documented there)
  control_socket  the 0600 Unix socket
  metrics         Prometheus collector and endpoint
  client / cli / render    the command line
  logs            text / JSON log lines with the node name
  datapath_driver the kernel datapath (separate; imported only when the datapath is on)

Nothing is imported here: `swimnet-agent keygen` and the client commands stay light.
"""
