"""The control API's transport: HTTP/1.1 + JSON over the agent's 0600 Unix socket.

Modules: server (h11 under trio: bounded, with timeouts; also serves /metrics), control_socket
(the socket file: mode, stale sockets, cleanup), routes (URL scheme; request bodies -> typed
arguments -> domain calls; domain error kinds -> status codes), answers (the JSON shapes).

Rules: nothing here decides anything about networks, endpoints, services or keys: routes
parse, call the domain (`swimnet.agent.domain`) and render. Nothing is imported here.
"""
