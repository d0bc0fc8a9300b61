"""swimnet-agent: the per-host daemon that turns the gossip cluster into overlay networks.

Packages, by role:
  domain/   the overlay agent: network, endpoint, service, key, diagnosis and DNS operations with
            typed arguments; raises OperationError (kind + field); talks to the node only
            through domain/cluster.py
  http/     the control API: h11 server, the 0600 Unix socket, routes (body -> typed
            arguments -> domain; error kind -> status), the JSON answers
  cli/      the command line: argument parsing and entry point, commands, the blocking
            client, human rendering
  daemon/   wiring: settings (TOML + flags), state directory, the run loop (start, signals,
            graceful leave, exit codes), Prometheus metrics

Shared by every role (kept at this level):
  errors        OperationError / ErrorKind (what an operation refuses) and StartupError
  checks        value checks of operation arguments (raise INVALID naming the field)
  fields        JSON request bodies read field by field (raise INVALID naming the field)
  logs          log lines with the node name, text or JSON (structured fields: swimnet.logfields)
  probe_rtt     the histogram of direct probe round-trip times (the node's ping observer,
                read by the metrics)

Elsewhere: the datapath driver is `swimnet.datapath.driver` (imported lazily by the daemon,
only when the datapath is on); the snapshot it is fed is `swimnet.overlay.snapshot`.

Dependencies point one way: cli -> (daemon, lazily, for `run`); daemon -> http, domain;
http -> domain; domain -> swimnet's library layers. Nothing is imported here:
`swimnet-agent keygen` and the client commands stay light.
"""
